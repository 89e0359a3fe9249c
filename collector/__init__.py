"""The watchkeeper collector: receives results, keeps every host's state."""
