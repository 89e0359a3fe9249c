"""Starters for the real services the tests talk to (PostgreSQL, ...)."""
