"""Lambda entry point (handler: scheduler.app.handler)."""
