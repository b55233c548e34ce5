"""The Advance Lambda."""
