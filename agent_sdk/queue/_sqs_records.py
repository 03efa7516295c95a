"""The SQS queue's message bodies: a job as a JSON record, and back.

A record is one JSON object (ASCII-escaped, so any text survives SQS's character rules) tagged
with ``RECORD_TAG``, so that a message someone else wrote to the queue is told apart and never
reaches a worker. A dead letter adds ``died_at``; a job held back longer than SQS's longest delay
adds ``hold_until``.
"""

from __future__ import annotations

import json
from typing import Any

from agent_sdk.queue.base import DeadJob, Job

RECORD_TAG = "agent-sdk-job/1"  # marks a message body as one of our records


def dumps(record: dict[str, Any]) -> str:
    # ASCII escapes: SQS refuses NUL, lone surrogates and a few other characters in a body.
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


def record(job: Job) -> dict[str, Any]:
    return {
        "tag": RECORD_TAG,
        "id": job.id,
        "kind": job.kind,
        "payload": job.payload,
        "attempts": job.attempts,
        "enqueued_at": job.enqueued_at,
        "available_at": job.available_at,
        "last_error": job.last_error,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse(body: str) -> dict[str, Any] | None:
    """The record in a message body, or None for a message that is not one of ours."""
    try:
        record = json.loads(body)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("tag") != RECORD_TAG:
        return None
    ok = (
        isinstance(record.get("id"), str)
        and isinstance(record.get("kind"), str)
        and isinstance(record.get("payload"), dict)
        and isinstance(record.get("attempts"), int)
        and _is_number(record.get("enqueued_at"))
        and _is_number(record.get("available_at"))
        and isinstance(record.get("last_error"), str | None)
        and _is_number(record.get("hold_until", 0))
        and _is_number(record.get("died_at", 0))
    )
    return record if ok else None


def job(record: dict[str, Any], *, attempts: int | None = None) -> Job:
    return Job(
        id=record["id"],
        kind=record["kind"],
        payload=record["payload"],
        attempts=record["attempts"] if attempts is None else attempts,
        enqueued_at=float(record["enqueued_at"]),
        available_at=float(record["available_at"]),
        last_error=record["last_error"],
    )


def foreign(message: dict[str, Any]) -> DeadJob:
    """A message of the dead queue that is not one of our records, shown as a dead job."""
    sent = int(message.get("Attributes", {}).get("SentTimestamp", "0")) / 1000
    job = Job(
        id="sqs:" + message["MessageId"],
        kind="sqs.message",
        payload={"body": message["Body"]},
        attempts=0,
        enqueued_at=sent,
        available_at=sent,
        last_error="not an agent-sdk job",
    )
    return DeadJob(job=job, error="not an agent-sdk job", died_at=sent)


__all__ = ["RECORD_TAG", "dumps", "foreign", "job", "parse", "record"]
