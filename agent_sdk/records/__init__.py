"""Plain records passed between the layers. They carry data, never behaviour that touches I/O.

Every type a Backend method takes or returns is here, so a client of the HTTP API needs nothing
of the core, governance or the store to read an answer. Every record converts to a JSON-ready
dict with ``to_dict`` and back with ``from_dict``; the HTTP API, the CLI's ``-o json`` and the
store all use these same shapes.

The records are grouped by domain, one module each, and re-exported here:

* :mod:`agent_sdk.records.runs`: runs, events, sessions, usage, erasure receipts;
* :mod:`agent_sdk.records.access`: orgs, API keys and the principal of a request;
* :mod:`agent_sdk.records.audit`: audit entries, checkpoints, anchors, verification reports;
* :mod:`agent_sdk.records.governance`: residency, encryption keys, redaction policy views;
* :mod:`agent_sdk.records.retention`: retention policies, their cutoffs and sweep reports;
* :mod:`agent_sdk.records.ops`: the state of schema migrations.

:mod:`agent_sdk.records.sealed` is the one module not re-exported: the shapes encryption at rest
leaves in the store (a stored key generation, the sealed-value prefix), which the codec in
governance and the store share but no Backend ever returns.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_sdk.records._base import Page
    from agent_sdk.records.access import ApiKey, Org, Principal
    from agent_sdk.records.audit import AuditAnchor, AuditEntry, Checkpoint, VerifyReport
    from agent_sdk.records.governance import (
        CustomPattern,
        EncryptionKey,
        Preview,
        RedactionPolicy,
        RedactionView,
        Residency,
        RewrapReport,
    )
    from agent_sdk.records.ops import MigrationState
    from agent_sdk.records.retention import (
        Cutoffs,
        OrgSweep,
        Progress,
        RetentionPolicy,
        RetentionView,
        RunExpiry,
        SweepReport,
    )
    from agent_sdk.records.runs import Deletion, Event, EventType, Run, RunStatus, Session, Usage

__all__ = [
    "ApiKey",
    "AuditAnchor",
    "AuditEntry",
    "Checkpoint",
    "Cutoffs",
    "CustomPattern",
    "Deletion",
    "EncryptionKey",
    "Event",
    "EventType",
    "MigrationState",
    "Org",
    "OrgSweep",
    "Page",
    "Preview",
    "Principal",
    "Progress",
    "RedactionPolicy",
    "RedactionView",
    "Residency",
    "RetentionPolicy",
    "RetentionView",
    "RewrapReport",
    "Run",
    "RunExpiry",
    "RunStatus",
    "Session",
    "SweepReport",
    "Usage",
    "VerifyReport",
]


# Each name's module. A name is imported on first use (PEP 562), not with the package: each module
# is a handful of dataclasses, each costing about a millisecond to build, and a CLI call such as
# `runs list` needs the runs module alone.
_HOME = {
    "Page": "_base",
    **dict.fromkeys(["ApiKey", "Org", "Principal"], "access"),
    **dict.fromkeys(["AuditAnchor", "AuditEntry", "Checkpoint", "VerifyReport"], "audit"),
    **dict.fromkeys(
        ["CustomPattern", "EncryptionKey", "Preview", "RedactionPolicy", "RedactionView"],
        "governance",
    ),
    **dict.fromkeys(["Residency", "RewrapReport"], "governance"),
    "MigrationState": "ops",
    **dict.fromkeys(
        ["Cutoffs", "OrgSweep", "Progress", "RetentionPolicy", "RetentionView", "RunExpiry"],
        "retention",
    ),
    "SweepReport": "retention",
    **dict.fromkeys(["Deletion", "Event", "EventType", "Run", "RunStatus", "Session"], "runs"),
    "Usage": "runs",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # the next lookup is a plain one
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])
