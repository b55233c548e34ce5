"""Lambda entry point (handler: container_events.app.handler)."""
