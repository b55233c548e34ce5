"""The single table for these tests: the schema module's when it exists, else the documented contract."""

from __future__ import annotations

from typing import Any

TABLE = "formica-api-test"
BUCKET = "formica-api-test-artifacts"


def create_formica_table(client: Any, table_name: str) -> None:
    try:
        from formica.store.schema import create_table
    except ImportError:  # the schema module lands with the walk; the contract is docs/architecture.md
        pass
    else:
        create_table(client, table_name)
        return
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": f"{name}pk", "KeyType": "HASH"},
                    {"AttributeName": f"{name}sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for name in ("gsi1", "gsi2")
        ],
    )
