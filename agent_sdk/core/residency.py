"""Data residency: the region an org's data is served in, and the one check every edge makes.

An org may be pinned to a region (the per-org setting ``region``: ``eu``, ``us``,
``eu-west-1``, ...). A process started with ``AGENT_SDK_DATA_REGION`` serves only the orgs of
its region:

* the HTTP server answers 403 ``wrong_region`` to any request acting in an org pinned elsewhere
  (checked in :mod:`agent_sdk.server.deps`, after the caller is known to act in that org, so a
  caller learns nothing about the region of an org it cannot see);
* the local CLI refuses the same way, with the exit code of a permission error;
* a worker gives a job of another region's org back to the queue, with a delay, instead of
  executing it (:func:`refuse_attempt` at the start of every attempt);
* recovery sweeps skip orgs of other regions: each region recovers its own runs.

Two choices, written down because a compliance review asks about them:

* **An org without a region is served everywhere.** It has no residency requirement yet, and
  pinning is then one explicit, audited act. A deployment that promises residency pins every
  org, and sets ``AGENT_SDK_DATA_REGION`` on every server and worker: a process without it
  serves every region, as before this feature.
* **Only a platform admin moves an org.** Reading the region needs ``admin:orgs`` (an org admin
  may learn where its own data lives); changing it also needs ``admin:platform``, because an
  org admin must not move its own data out of the region its operator promised. The residency
  routes themselves are not region-checked, so a wrongly pinned org can be fixed from any
  server.

The HTTP check reads a per-process cache (``ttl`` seconds, dropped at once in the process that
makes a change): another process sees a change within that time. A worker reads the store at
each attempt, uncached, because executing a run is the act residency exists to prevent.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from agent_sdk.config import REGION, REGION_MAX
from agent_sdk.core.actors import Actor, audit_action
from agent_sdk.errors import InvalidInput, PermissionDenied, WrongRegion
from agent_sdk.security.scopes import ADMIN_PLATFORM

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent_sdk.config import Settings
    from agent_sdk.core.audit import AuditService
    from agent_sdk.core.orgs import OrgService
    from agent_sdk.records import Principal, Residency
    from agent_sdk.store.base import Store

log = logging.getLogger(__name__)

SETTING = "region"  # the name of the per-org setting
CACHE_SECONDS = 5.0

# A worker that leases a job of another region's org gives it back ready again after
# HANDBACK_BASE * 2**n seconds (n: deliveries so far), at most HANDBACK_MAX: the right region's
# workers get it soon, and a job whose region has no worker costs one lease every minute.
HANDBACK_BASE = 0.5
HANDBACK_MAX = 60.0


def check_region(value: Any) -> str:
    """A valid region id, or InvalidInput (nothing is normalised: ``EU`` is refused)."""
    if not isinstance(value, str) or len(value) > REGION_MAX or not REGION.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise InvalidInput(
            f"invalid region {shown}",
            hint=f"a region is a lowercase id of up to {REGION_MAX} letters, digits and "
            "single '-' (eu, us, eu-west-1)",
        )
    return value


def handback_delay(deliveries: int) -> float:
    """Seconds before a job handed back by a worker of the wrong region is ready again."""
    return min(HANDBACK_MAX, HANDBACK_BASE * 2.0 ** min(max(deliveries - 1, 0), 16))


def wrong_region(org_id: str, org_region: str, server_region: str) -> WrongRegion:
    return WrongRegion(
        f"org {org_id!r} is kept in region {org_region!r}; this deployment serves region "
        f"{server_region!r}",
        hint=f"send the request to a server of region {org_region!r}",
        org_region=org_region,
        server_region=server_region,
    )


def _stored_region(store: Store, org_id: str) -> str | None:
    value = store.get_org_setting(org_id, SETTING)
    return value if isinstance(value, str) else None


def refuse_attempt(settings: Settings, store: Store, org_id: str) -> str | None:
    """Why this process must not execute a run of ``org_id`` (None: it may). Read from the
    store, not a cache: the org may have been moved since its job was enqueued."""
    here = settings.data_region
    if here is None:
        return None
    region = _stored_region(store, org_id)
    if region is None or region == here:
        return None
    return wrong_region(org_id, region, here).message


class ResidencyService:
    def __init__(
        self,
        store: Store,
        *,
        here: str | None,
        orgs: OrgService,
        audit: Callable[[], AuditService],
        ttl: float = CACHE_SECONDS,
    ) -> None:
        """``here``: the region this process serves (None: every region)."""
        self.store = store
        self.here = here
        self._orgs = orgs
        self._audit = audit
        self.ttl = ttl
        self._cache: dict[str, tuple[str | None, float]] = {}

    # -- the check -----------------------------------------------------------------------------
    def region_of(self, org_id: str) -> str | None:
        """The org's region (None: not pinned), from a cache of ``ttl`` seconds."""
        now = time.monotonic()
        hit = self._cache.get(org_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        region = _stored_region(self.store, org_id)
        self._cache[org_id] = (region, now + self.ttl)
        return region

    def invalidate(self, org_id: str | None = None) -> None:
        """Forget the cached region of ``org_id`` (None: of every org)."""
        if org_id is None:
            self._cache.clear()
        else:
            self._cache.pop(org_id, None)

    def serves(self, org_id: str) -> bool:
        if self.here is None:
            return True  # no region configured: this process serves every region
        region = self.region_of(org_id)
        return region is None or region == self.here

    def check(self, org_id: str) -> None:
        """Raise WrongRegion when this process may not act in ``org_id``. Callers check first
        that the caller may act in the org at all: this one names the org's region."""
        if self.here is None:
            return
        region = self.region_of(org_id)
        if region is not None and region != self.here:
            raise wrong_region(org_id, region, self.here)

    # -- the setting ---------------------------------------------------------------------------
    def show(self, org_id: str) -> Residency:
        from agent_sdk.records import Residency

        self._orgs.get(org_id)  # NotFound for an unknown org
        return Residency(org_id, _stored_region(self.store, org_id), self.here)

    def set(self, org_id: str, region: str | None, *, actor: Actor | None = None) -> Residency:
        """Pin ``org_id`` to ``region`` (None: unpin), with an audit record of the move."""
        if region is not None:
            check_region(region)
        self._orgs.get(org_id)
        with self.store.transaction():
            before = _stored_region(self.store, org_id)
            self.store.set_org_setting(org_id, SETTING, region)
            action = "residency.set" if region is not None else "residency.clear"
            details = {"region": region, "previous": before}
            audit_action(self._audit(), org_id, actor, action, org_id, details=details)
        self.invalidate(org_id)
        from agent_sdk.records import Residency

        return Residency(org_id, region, self.here)

    def set_as(
        self, principal: Principal, org_id: str, region: str | None, *, actor: Actor | None
    ) -> Residency:
        """The HTTP API's rule: only ``admin:platform`` moves an org. A refusal is audited in
        the org it was aimed at (the request named that org, so the caller may act in it)."""
        if not principal.can(ADMIN_PLATFORM):
            action = "residency.set" if region is not None else "residency.clear"
            audit_action(
                self._audit(),
                org_id,
                actor,
                action,
                org_id,
                outcome="denied",
                details={"reason": "needs admin:platform"},
            )
            raise PermissionDenied(
                "changing an org's region needs the admin:platform scope",
                hint="ask the platform operator: an org admin may read its region, not move it",
            )
        return self.set(org_id, region, actor=actor)


__all__ = [
    "CACHE_SECONDS",
    "SETTING",
    "ResidencyService",
    "check_region",
    "handback_delay",
    "refuse_attempt",
    "wrong_region",
]
