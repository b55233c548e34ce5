"""The table and bucket names of these tests; the table itself comes from ``formica.store.schema``."""

from __future__ import annotations

from typing import Any

from formica.store.schema import create_table

TABLE = "formica-api-test"
BUCKET = "formica-api-test-artifacts"


def create_formica_table(client: Any, table_name: str) -> None:
    create_table(client, table_name)
