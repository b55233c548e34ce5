"""Lambda entry point (handler: reconciler.app.handler)."""
