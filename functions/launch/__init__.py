"""The Launch Lambda."""
