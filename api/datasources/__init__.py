"""Data sources: the list, and each one's schema snapshot."""
