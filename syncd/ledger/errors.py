"""Errors the ledger raises on bad input: each one means nothing was written."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class for every error raised by the ledger."""


class UnbalancedTransactionError(LedgerError, ValueError):
    """A draft's postings do not sum to zero (seed 000 L13125: "for each stock
    change on a target there must be an equal and opposite entry")."""


class ConflictingPostingError(LedgerError, ValueError):
    """A posting's external id is already recorded with a different account or
    quantity: source postings are immutable (seed 000 L13131), so the same id
    with other content is corrupt input, never an update."""


class InvalidObservationError(LedgerError, ValueError):
    """An observation or outbox update that cannot be recorded as given."""
