"""The REST contract's logic: models, route logic, auth and the one error mapping.

``functions/api/app.py`` holds only the resolver's routes; everything they call lives here.
"""
