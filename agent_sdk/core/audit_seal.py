"""Signing idle audit logs on a period, in servers and workers.

A checkpoint is signed every ``AGENT_SDK_AUDIT_CHECKPOINT_EVERY`` records and on the first
record written ``AGENT_SDK_AUDIT_CHECKPOINT_SECONDS`` after the org's newest checkpoint (see
:class:`agent_sdk.core.audit.AuditService`). An org that then writes nothing more would keep its
last few records unsigned for ever, and those are the records an attacker with the database can
cut without a trace. So every server and worker also signs, on the same period, the head of
each org whose chained log runs past its newest checkpoint: no record stays unsigned for much
longer than the period, and the next ``audit checkpoints export`` carries it off the machine.
Several processes doing this at once sign the same head at most once (a checkpoint is unique
per org and seq).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from agent_sdk.errors import AgentSDKError

if TYPE_CHECKING:
    from agent_sdk.core.runtime import Runtime

log = logging.getLogger("agent_sdk.audit")


async def seal_periodically(runtime: Runtime, interval: float) -> None:
    """Sign every unsigned chained tail every ``interval`` seconds, until cancelled. A failed
    round is logged; the next one tries again."""
    while True:
        await asyncio.sleep(interval)
        try:
            signed = await asyncio.to_thread(runtime.audit.seal)
            if signed:
                log.debug("signed audit checkpoints of %d orgs", len(signed))
        except AgentSDKError as exc:
            log.warning("signing audit checkpoints failed: %s", exc.message)


def start_sealer(runtime: Runtime) -> asyncio.Task[None] | None:
    """The periodic signing of a server or worker, or None when the chain is off or the period
    is 0. The signing key is loaded first, so a bad key file stops the process at start-up
    rather than failing the first action that needs a checkpoint."""
    settings = runtime.settings
    if not settings.audit.hash_chain:
        return None
    runtime.audit.prepare_signer()
    if settings.audit.checkpoint_seconds <= 0:
        return None
    interval = settings.audit.checkpoint_seconds
    return asyncio.get_running_loop().create_task(seal_periodically(runtime, interval))


__all__ = ["seal_periodically", "start_sealer"]
