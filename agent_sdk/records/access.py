"""Who may act: orgs, API keys as listings show them, and the principal a request runs as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent_sdk.records._base import Record


@dataclass(frozen=True, slots=True)
class Org(Record):
    id: str
    name: str
    created_at: str


@dataclass(frozen=True, slots=True)
class ApiKey(Record):
    """An API key as listings show it. It never holds the secret or its hash: those stay in the
    store, so no code path that renders a key can leak one."""

    id: str
    org_id: str
    name: str
    prefix_display: str  # "asdk_<id>_": the public part of the token
    last4: str  # the token's last four characters, to tell rotations apart
    role: str
    scopes: list[str]
    created_at: str
    created_by: str
    expires_at: str | None = None
    revoked_at: str | None = None
    rotated_at: str | None = None
    last_used_at: str | None = None
    rate_per_second: float | None = None
    burst: int | None = None
    ip_allowlist: list[str] = field(default_factory=list)

    @property
    def display(self) -> str:
        return f"{self.prefix_display}…{self.last4}"


_PLATFORM_SCOPE = "admin:platform"  # agent_sdk.security.scopes.ADMIN_PLATFORM; records import none


@dataclass(frozen=True, slots=True)
class Principal(Record):
    """Who is making a request, as authentication established it, and what it may do."""

    subject: str  # "api_key:<id>", a JWT's "sub", or "bootstrap"
    org_id: str
    scopes: frozenset[str]
    kind: str  # "api_key" | "jwt" | "bootstrap"
    key_id: str | None = None
    rate_per_second: float | None = None
    burst: int | None = None
    ip_allowlist: tuple[str, ...] = ()

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    def acts_in(self, org_id: str) -> bool:
        """A principal acts in its own org; only ``admin:platform`` reaches into others."""
        return org_id == self.org_id or _PLATFORM_SCOPE in self.scopes

    def to_dict(self) -> dict[str, Any]:
        out = Record.to_dict(self)
        out["scopes"] = sorted(self.scopes)
        out["ip_allowlist"] = list(self.ip_allowlist)
        return out


__all__ = ["ApiKey", "Org", "Principal"]
