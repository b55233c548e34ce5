"""Lambda entry point (handler: api.app.handler)."""
