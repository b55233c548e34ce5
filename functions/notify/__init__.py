"""Lambda entry point (handler: notify.app.handler)."""
