"""Request Tracker 5: mirroring watchkeeper's tickets into RT and reading staff work back."""
