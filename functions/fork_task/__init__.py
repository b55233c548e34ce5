"""The HttpTask Lambda."""
