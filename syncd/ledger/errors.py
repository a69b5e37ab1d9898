"""Errors the ledger raises on bad input: each one means nothing was written."""

from __future__ import annotations

from collections.abc import Sequence


class LedgerError(Exception):
    """Base class for every error raised by the ledger."""


class UnbalancedTransactionError(LedgerError, ValueError):
    """A draft's postings do not sum to zero (seed 000 L13125: "for each stock
    change on a target there must be an equal and opposite entry")."""


class ConflictingPostingError(LedgerError, ValueError):
    """A posting's external id is already recorded with a different account or
    quantity: source postings are immutable (seed 000 L13131), so the same id
    with other content is corrupt input, never an update.

    ``external_ids`` lists every conflicting id of the draft, so a source can
    leave those postings out, report them and record the rest.
    """

    def __init__(self, message: str, external_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.external_ids = tuple(external_ids)


class InvalidObservationError(LedgerError, ValueError):
    """An observation or outbox update that cannot be recorded as given."""
