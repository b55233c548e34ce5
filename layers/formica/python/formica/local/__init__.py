"""The embedded default: `formica dev` runs the product on loopback with moto, no AWS account needed."""
