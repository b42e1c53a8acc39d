"""The history: what the store keeps about each item, and the monthly rating (pure: no I/O)."""
