"""Lambda entry points: one folder per function, each a thin ``app.py`` whose ``handler`` wires one call."""
