"""The cold-start probe's positive control: a module that breaks the rule on purpose.

It creates one boto3 client and reads one FORMICA_* variable at import, so the probe in
bench/cold_start.py must count one client and one read here; zeros would mean the probe is blind.
Credentials are given inline so that botocore never looks for them beyond this process.
"""

import os

import boto3

client = boto3.client(
    "s3",
    region_name="us-east-1",
    aws_access_key_id="bench",
    aws_secret_access_key="bench",  # noqa: S106
)
table_name = os.environ.get("FORMICA_TABLE_NAME")
