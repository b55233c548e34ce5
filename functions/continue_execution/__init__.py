"""The ContinueAsNew Lambda."""
