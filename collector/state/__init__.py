"""Current state per (host, check, target), status history, problems, host silence."""
