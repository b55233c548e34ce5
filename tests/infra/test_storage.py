"""Storage: the one table and the artifacts bucket, as docs/architecture.md's contracts say."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match

from tests.infra.synthesis import Synth


def only(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert len(resources) == 1, sorted(resources)
    return next(iter(resources.values()))


def artifacts_bucket(synth: Synth) -> dict[str, Any]:
    buckets = {
        key: value for key, value in synth.of_type("AWS::S3::Bucket").items() if "ArtifactsBucket" in key
    }
    return only(buckets)


def test_table_has_the_contract_keys_indexes_and_ttl(synth: Synth) -> None:
    table = only(synth.of_type("AWS::DynamoDB::Table"))["Properties"]

    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {index["IndexName"]: index["KeySchema"] for index in table["GlobalSecondaryIndexes"]} == {
        name: [
            {"AttributeName": f"{name}pk", "KeyType": "HASH"},
            {"AttributeName": f"{name}sk", "KeyType": "RANGE"},
        ]
        for name in ("gsi1", "gsi2")
    }
    assert all(index["Projection"] == {"ProjectionType": "ALL"} for index in table["GlobalSecondaryIndexes"])
    assert {item["AttributeName"]: item["AttributeType"] for item in table["AttributeDefinitions"]} == {
        "pk": "S",
        "sk": "S",
        "gsi1pk": "S",
        "gsi1sk": "S",
        "gsi2pk": "S",
        "gsi2sk": "S",
    }
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_dev_table_can_be_deleted_and_protected_table_cannot(synth: Synth, variant: Synth) -> None:
    dev = only(synth.of_type("AWS::DynamoDB::Table"))
    protected = only(variant.of_type("AWS::DynamoDB::Table"))

    assert dev["Properties"]["DeletionProtectionEnabled"] is False
    assert dev["DeletionPolicy"] == "Delete"
    assert protected["Properties"]["DeletionProtectionEnabled"] is True
    assert protected["DeletionPolicy"] == "Retain"
    assert artifacts_bucket(variant)["DeletionPolicy"] == "Retain"


def test_artifacts_bucket_is_encrypted_private_and_logged(synth: Synth) -> None:
    bucket = artifacts_bucket(synth)["Properties"]

    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    target = bucket["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert "AccessLogsBucket" in target
    assert bucket["LoggingConfiguration"]["LogFilePrefix"] == "artifacts-bucket/"


def test_artifacts_and_task_logs_expire_with_the_configured_expiry(synth: Synth, variant: Synth) -> None:
    def rules(of: Synth) -> list[dict[str, Any]]:
        return list(artifacts_bucket(of)["Properties"]["LifecycleConfiguration"]["Rules"])

    # One bucket-wide rule: keys are {org}/{request_id}/{task_type}/artifacts|logs/..., no fixed prefix.
    (rule,) = rules(synth)
    assert rule["Status"] == "Enabled"
    assert "Prefix" not in rule and "TagFilters" not in rule
    assert rule["ExpirationInDays"] == 30
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rules(variant)[0]["ExpirationInDays"] == 7


def test_buckets_refuse_plain_http(synth: Synth) -> None:
    policies = synth.of_type("AWS::S3::BucketPolicy")
    assert len(policies) == 2  # artifacts and access logs
    for policy in policies.values():
        denies = [
            statement
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Deny"
        ]
        assert denies and denies[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_access_logs_bucket_is_private_encrypted_and_expires(synth: Synth) -> None:
    synth.assertions.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": Match.object_like({}),
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
            "LifecycleConfiguration": {
                "Rules": [Match.object_like({"ExpirationInDays": 90, "Status": "Enabled"})]
            },
        },
    )
