"""Fake external services the tests run on loopback (no test talks to the real ones)."""
