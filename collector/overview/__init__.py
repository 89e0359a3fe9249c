"""The read-only overview page at /."""
