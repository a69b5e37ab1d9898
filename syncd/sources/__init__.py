"""Read-only adapters that turn remote stock and orders into ledger records."""
