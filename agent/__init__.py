"""The watchkeeper agent: runs checks on a host and pushes results durably."""

__version__ = "0.1.0"
