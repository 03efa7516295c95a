"""Where an SQS queue is: its URL taken apart into what boto3 needs (see :mod:`.sqs`)."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import unquote, urlsplit, urlunsplit

from agent_sdk.config import AwsEnvironment
from agent_sdk.errors import ConfigError
from agent_sdk.masking import mask_url

AWS_HOST = re.compile(r"(?:^|\.)amazonaws\.com(?:\.cn)?$")
_REGION_IN_HOST = re.compile(r"^(?:sqs\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com")


@dataclasses.dataclass(frozen=True)
class Place:
    """A queue URL taken apart: the URL to send, where to send it, who signs it."""

    url: str  # the queue URL as SQS names it (no credentials, no query)
    shown: str  # the URL as error messages show it (secret masked)
    name: str
    endpoint: str | None
    region: str
    key_id: str | None
    secret: str | None


def place(url: str, *, endpoint: str | None, region: str | None, aws: AwsEnvironment) -> Place:
    """Take ``url`` apart. ``endpoint`` and ``region`` win when given; else the AWS variables
    in ``aws`` and the URL's host decide, in the order :mod:`agent_sdk.queue.sqs` describes."""
    raw = url.removeprefix("sqs+")
    parts = urlsplit(raw)
    shown = mask_url(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"not an SQS queue URL: {shown}",
            hint="e.g. https://sqs.us-east-1.amazonaws.com/123456789012/agent-sdk-jobs",
        )
    path = parts.path.rstrip("/")
    name = path.rsplit("/", 1)[-1]
    if not name or "/" not in path:
        raise ConfigError(f"the SQS queue URL {shown} names no queue", hint="…/<account>/<name>")
    if name.endswith(".fifo"):
        raise ConfigError(
            f"{shown} is a FIFO queue, which has no per-message delay",
            hint="use a standard SQS queue",
        )
    host = parts.hostname
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, path, "", ""))
    endpoint = endpoint or aws.sqs_endpoint
    if endpoint is None and not AWS_HOST.search(host):
        endpoint = f"{parts.scheme}://{netloc}"
    found = _REGION_IN_HOST.match(host)
    region = region or (found and (found.group(1) or found.group(2))) or aws.any_region
    return Place(
        url=clean,
        shown=shown,
        name=name,
        endpoint=endpoint,
        region=region or "",
        key_id=unquote(parts.username) if parts.username else None,
        secret=unquote(parts.password) if parts.password else None,
    )


__all__ = ["Place", "place"]
