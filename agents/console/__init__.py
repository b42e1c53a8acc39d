"""The operations console's rules: who may see and do what, how urgent an item is, disputes, sign-in limits."""
