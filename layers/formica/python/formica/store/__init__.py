"""Adapters to AWS storage: DynamoDB repositories and the S3 blob store (ports as ABCs, boto3 at the edge)."""
