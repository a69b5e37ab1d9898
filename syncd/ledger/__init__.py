"""The SQLite stock ledger: append-only, double-entry, the daemon's memory."""
