"""GET /api/jobs/requests/{id}/webhooks: the request's deliveries (url, event, status, attempts), for
its own organisation only, never the headers or body a delivery sent."""

from __future__ import annotations

import dataclasses

import boto3
from formica.api.services import use_services
from formica.store.deliveries import DeliveryChannel, DeliveryRepository, DeliveryStatus, WebhookDeliveryItem
from formica.store.requests import now_iso
from formica.store.webhook_secrets import SecretsManagerWebhookSecrets

from tests.integration.api.conftest import ApiWorld, submit
from tests.integration.api.tables import TABLE


def _delivery(request_id: str, event_id: str, event: str) -> WebhookDeliveryItem:
    now = now_iso()
    return WebhookDeliveryItem(
        request_id=request_id,
        delivery_id=f"{event_id}#job",
        org="acme",
        event=event,
        url="https://hooks.example.com/formica",
        headers={"Authorization": "Bearer receiver-credential"},
        body='{"job_state": "COMPLETED"}',
        created_at=now,
        updated_at=now,
    )


def test_the_deliveries_of_a_request_are_listed_for_its_organisation_only(defined: ApiWorld) -> None:
    world = defined
    # Given: an acme request with two deliveries, the second after a failed attempt
    deliveries = DeliveryRepository(TABLE, client=world.ddb)
    use_services(dataclasses.replace(world.services, deliveries=deliveries))
    request_id = submit(world, {"job_type": "hello-job"}).json()["id"]
    for event_id, event in (("e1", "JOB STARTED"), ("e2", "JOB COMPLETED")):
        assert deliveries.create(_delivery(request_id, event_id, event))
    assert deliveries.claim_attempt(request_id, "e1#job", 1, now_iso())
    deliveries.settle_attempt(
        request_id, "e1#job", 1, status=DeliveryStatus.DELIVERED, result="HTTP 200", now=now_iso()
    )
    assert deliveries.claim_attempt(request_id, "e2#job", 1, now_iso())
    deliveries.settle_attempt(
        request_id, "e2#job", 1, status=DeliveryStatus.PENDING, result="HTTP 503", now=now_iso()
    )

    # When: its organisation lists them
    response = world.call("GET", f"/api/jobs/requests/{request_id}/webhooks")

    # Then: url, event, status and attempts, and nothing of what was sent
    assert response.status == 200, response.body
    records = response.json()["records"]
    assert [(r["event"], r["status"], r["attempts"], r["last_result"]) for r in records] == [
        ("JOB STARTED", "DELIVERED", 1, "HTTP 200"),
        ("JOB COMPLETED", "PENDING", 1, "HTTP 503"),
    ]
    assert {r["url"] for r in records} == {"https://hooks.example.com/formica"}
    assert "receiver-credential" not in response.body
    # and another organisation's token does not find the request
    assert (
        world.call("GET", f"/api/jobs/requests/{request_id}/webhooks", token=world.other_token).status == 404
    )


def test_a_second_claim_of_the_same_attempt_is_refused(defined: ApiWorld) -> None:
    world = defined
    deliveries = DeliveryRepository(TABLE, client=world.ddb)
    request_id = submit(world, {"job_type": "hello-job"}).json()["id"]
    assert deliveries.create(_delivery(request_id, "e1", "JOB STARTED"))
    assert not deliveries.create(_delivery(request_id, "e1", "JOB STARTED"))  # the event delivered twice
    assert deliveries.claim_attempt(request_id, "e1#job", 1, now_iso())
    assert not deliveries.claim_attempt(request_id, "e1#job", 1, now_iso())  # a redelivered message
    deliveries.settle_attempt(
        request_id, "e1#job", 1, status=DeliveryStatus.FAILED, result="x", now=now_iso()
    )
    assert not deliveries.claim_attempt(request_id, "e1#job", 2, now_iso())  # settled: no more attempts


def test_each_organisation_reads_its_own_signing_secret_created_on_first_use(world: ApiWorld) -> None:
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    use_services(
        dataclasses.replace(
            world.services, webhook_secrets=SecretsManagerWebhookSecrets("formica/webhooks/", secrets)
        )
    )
    first = world.call("GET", "/api/webhooks/secret")
    assert first.status == 200, first.body
    acme = first.json()["secret"]
    assert len(acme) == 64 and first.json()["signature_header"] == "X-Formica-Signature-256"
    assert world.call("GET", "/api/webhooks/secret").json()["secret"] == acme  # created once
    assert world.call("GET", "/api/webhooks/secret", token=world.other_token).json()["secret"] != acme
    assert secrets.get_secret_value(SecretId="formica/webhooks/acme")["SecretString"] == acme


def test_notify_messages_are_listed_with_their_channel_recipients_and_outbox_file(defined: ApiWorld) -> None:
    world = defined
    deliveries = DeliveryRepository(TABLE, client=world.ddb)
    use_services(dataclasses.replace(world.services, deliveries=deliveries))
    request_id = submit(world, {"job_type": "hello-job"}).json()["id"]
    now = now_iso()
    email = WebhookDeliveryItem(
        request_id=request_id,
        delivery_id="e9#email",
        org="acme",
        event="JOB FAILED",
        url="email:ana@example.com",
        channel=DeliveryChannel.EMAIL,
        recipients=["ana@example.com"],
        body='{"subject": "s", "text": "t"}',
        created_at=now,
        updated_at=now,
    )
    slack = email.model_copy(
        update={
            "delivery_id": "e9#slack",
            "url": "slack:#builds",
            "channel": DeliveryChannel.SLACK,
            "recipients": ["#builds"],
            "status": DeliveryStatus.SKIPPED,
            "last_result": "slack is off for this job: no SlackWebhookURL config",
        }
    )
    assert deliveries.create(email) and deliveries.create(slack)
    assert deliveries.claim_attempt(request_id, "e9#email", 1, now_iso())
    deliveries.settle_attempt(
        request_id,
        "e9#email",
        1,
        status=DeliveryStatus.DELIVERED,
        result="written to the outbox: e9-email.eml",
        now=now_iso(),
        outbox_file="e9-email.eml",
    )

    response = world.call("GET", f"/api/jobs/requests/{request_id}/webhooks")

    assert response.status == 200, response.body
    records = {r["channel"]: r for r in response.json()["records"]}
    assert set(records) == {"email", "slack"}
    assert (records["email"]["status"], records["email"]["outbox_file"], records["email"]["recipients"]) == (
        "DELIVERED",
        "e9-email.eml",
        ["ana@example.com"],
    )
    assert (records["slack"]["status"], records["slack"]["attempts"], records["slack"]["url"]) == (
        "SKIPPED",
        0,
        "slack:#builds",
    )
    assert records["slack"]["outbox_file"] is None
