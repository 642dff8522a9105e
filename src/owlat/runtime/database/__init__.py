"""The database layer: index keys, engines, transactions and queries."""
