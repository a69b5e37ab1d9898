"""How syncd tells an error in one line: in the ledger, the status document and ``syncd once``'s report.

One line and bounded, since the text is stored with a feed or a push and shown
in tables; the exception's type stays in front so a reader knows what failed.
"""

from __future__ import annotations


def describe_error(exc: BaseException) -> str:
    """``Type: message`` on one line, bounded (it goes into the ledger and status)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def describe_text(text: str) -> str:
    """An error text on one line, bounded like :func:`describe_error`."""
    return " ".join(text.split())[:500] or "unknown error"
