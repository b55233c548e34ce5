"""Lambda entry point (handler: authorizer.app.handler)."""
