"""The push endpoint: body limits, parsing, group commit into the store, retention."""
