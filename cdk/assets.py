"""What every asset of the stack leaves out (kept apart from the constructs so that measuring an
asset, cdk/package_sizes.py, needs no CDK)."""

# Never shipped: caches, and the metadata `pip install -e` leaves next to the library.
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/*.egg-info", "**/.mypy_cache", "**/.pytest_cache"]
