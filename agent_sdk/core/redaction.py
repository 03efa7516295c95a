"""PII redaction: an org's policy (show, replace, reset, add or remove a custom pattern, preview)
and the one function the write paths ask for the Redactor to apply.

With ``AGENT_SDK_PII_REDACTION_ENABLED=true`` the run service redacts a run's input, metadata
and script when it is created, and the attempt redacts every event payload and the run's output
and error as they are written (see :mod:`agent_sdk.core.runs` and :mod:`agent_sdk.core.attempt`):
what is stored is already redacted, so every reader (the API, the CLI, event streams, replays,
exports) only ever sees redacted data, and the model of a run sees what was stored too.

Each policy change is one transaction with its audit record (``redaction.set``,
``redaction.reset``, ``redaction.pattern.set``, ``redaction.pattern.delete``), whose details
name the disabled detectors and the pattern names, never a regex or a sample of text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent_sdk.core.actors import Actor, audit_action
from agent_sdk.errors import InvalidInput, NotFound
from agent_sdk.governance.redact import Finding, placeholders
from agent_sdk.governance.redact_patterns import BUILTIN_NAMES as BUILTIN_NAMES
from agent_sdk.governance.redact_policy import NAME as NAME
from agent_sdk.governance.redact_policy import PLACEHOLDER as PLACEHOLDER
from agent_sdk.governance.redact_policy import (
    SETTING,
    compile_policy,
    invalidate,
    parse_pattern,
    parse_policy,
    redactor_for,
    view,
    with_pattern,
)
from agent_sdk.governance.redact_safety import MAX_PATTERN_CHARS as MAX_PATTERN_CHARS
from agent_sdk.records import CustomPattern, Preview, RedactionPolicy, RedactionView

# Re-exported (``X as X`` above): what a policy may hold, for the edges that describe it (the HTTP
# API's schema), while the checks themselves run in governance: BUILTIN_NAMES, MAX_PATTERN_CHARS,
# NAME, PLACEHOLDER.

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent_sdk.config import Settings
    from agent_sdk.core.audit import AuditService
    from agent_sdk.core.orgs import OrgService
    from agent_sdk.governance.redact import Redactor
    from agent_sdk.store.base import Store

MAX_PREVIEW_CHARS = 100_000


def org_redactor(settings: Settings, store: Store, org_id: str) -> Redactor | None:
    """The Redactor to apply to ``org_id``'s data before it is stored; None when redaction is
    off (``AGENT_SDK_PII_REDACTION_ENABLED``)."""
    if not settings.pii_redaction_enabled:
        return None
    return redactor_for(store, org_id)


class RedactionService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        orgs: OrgService,
        audit: Callable[[], AuditService],
    ) -> None:
        self.store = store
        self.settings = settings
        self._orgs = orgs
        self._audit = audit

    def show(self, org_id: str) -> RedactionView:
        self._orgs.get(org_id)
        return self._view(org_id, self._policy(org_id))

    def replace(self, org_id: str, body: Any, *, actor: Actor | None = None) -> RedactionView:
        """Replace the org's whole policy with ``body`` ({disabled, patterns})."""
        policy = parse_policy(body)
        return self._save(org_id, policy, "redaction.set", actor)

    def reset(self, org_id: str, *, actor: Actor | None = None) -> RedactionView:
        """Back to every built-in detector and no custom pattern."""
        return self._save(org_id, RedactionPolicy(), "redaction.reset", actor)

    def set_pattern(
        self,
        org_id: str,
        name: str,
        regex: str,
        placeholder: str | None = None,
        *,
        actor: Actor | None = None,
    ) -> RedactionView:
        """Add a custom pattern, or replace the one named ``name``."""
        pattern = parse_pattern({"name": name, "regex": regex, "placeholder": placeholder})
        self._orgs.get(org_id)
        policy = with_pattern(self._policy(org_id), pattern)
        return self._save(org_id, policy, "redaction.pattern.set", actor, pattern=pattern)

    def delete_pattern(
        self, org_id: str, name: str, *, actor: Actor | None = None
    ) -> RedactionView:
        self._orgs.get(org_id)
        policy = self._policy(org_id)
        kept = tuple(p for p in policy.patterns if p.name != name)
        if len(kept) == len(policy.patterns):
            raise NotFound(f"custom pattern {name[:64]!r} not found")
        changed = RedactionPolicy(policy.disabled, kept)
        return self._save(org_id, changed, "redaction.pattern.delete", actor, removed=name)

    def preview(self, org_id: str, text: str) -> Preview:
        """``text`` as the org's policy would store it, and what was found (nothing is stored,
        logged or audited)."""
        if not isinstance(text, str):
            raise InvalidInput("text must be a string")
        if len(text) > MAX_PREVIEW_CHARS:
            raise InvalidInput(f"text is longer than {MAX_PREVIEW_CHARS} characters")
        self._orgs.get(org_id)
        found: list[Finding] = []
        redacted = redactor_for(self.store, org_id).redact(text, found)
        return Preview(redacted, placeholders(found))

    # -- internals ----------------------------------------------------------------------------
    def _policy(self, org_id: str) -> RedactionPolicy:
        return parse_policy(self.store.get_org_setting(org_id, SETTING))

    def _view(self, org_id: str, policy: RedactionPolicy) -> RedactionView:
        return view(org_id, self.settings.pii_redaction_enabled, policy)

    def _save(
        self,
        org_id: str,
        policy: RedactionPolicy,
        action: str,
        actor: Actor | None,
        *,
        pattern: CustomPattern | None = None,
        removed: str | None = None,
    ) -> RedactionView:
        compile_policy(policy)  # every check, the timing probe included, before anything is written
        details: dict[str, Any] = {
            "disabled": list(policy.disabled),
            "patterns": [p.name for p in policy.patterns],
        }
        if pattern is not None:
            details["pattern"] = pattern.name
        if removed is not None:
            details["pattern"] = removed
        with self.store.transaction():
            self.store.set_org_setting(
                org_id, SETTING, None if policy.is_default else policy.to_dict()
            )
            audit_action(self._audit(), org_id, actor, action, "redaction", details=details)
        invalidate(self.store, org_id)
        return self._view(org_id, policy)


def redact_process_logs(settings: Settings) -> Callable[[], None]:
    """With PII redaction on, every log record of the process is redacted from now on (see
    agent_sdk.governance.redact_logs); returns the function that stops it. The server does this
    for as long as its app runs, a CLI call for the whole call."""
    if not settings.pii_redaction_enabled:
        return lambda: None
    from agent_sdk.governance.redact_logs import install

    return install()
