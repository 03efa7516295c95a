"""An org's redaction policy: which built-in detectors it turns off and which patterns of its own
it adds, stored as the org setting ``"redaction"``, and the per-process cache of the Redactor
each org's policy compiles to.

The stored value is small JSON::

    {"disabled": ["ip"],
     "patterns": [{"name": "employee_id", "regex": "EMP-\\\\d{6}", "placeholder": "[EMPLOYEE_ID]"}]}

An org without the setting gets every built-in detector. Policies are validated when they are
set (names, placeholders, and the regex checks of :mod:`agent_sdk.governance.redact_safety`)
and again when read, so a value edited in the database by hand cannot smuggle in a pattern
that was never checked: a stored policy that no longer validates makes that org's writes fail
(redaction fails closed) until an admin sets a valid one.

The cache: compiling an org's Redactor costs the safety probe of each custom pattern, and every
event write needs it, so each process keeps one per (store, org) for :data:`CACHE_SECONDS`. A
change made through this process is seen at once (the admin service calls :func:`invalidate`);
other processes (workers, other server replicas) see it within ``CACHE_SECONDS``.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent_sdk.errors import InvalidInput
from agent_sdk.governance.redact import Redactor
from agent_sdk.governance.redact_patterns import (
    BUILTIN_NAMES,
    BUILTIN_PLACEHOLDERS,
    BUILTINS,
    DESCRIPTIONS,
    Detector,
)
from agent_sdk.records import CustomPattern, RedactionPolicy, RedactionView

SETTING = "redaction"  # the org setting's name
MAX_PATTERNS = 32
CACHE_SECONDS = 5.0
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]{0,39}\]")


def parse_policy(value: Any) -> RedactionPolicy:
    """A validated policy from JSON (a request body or the stored setting); InvalidInput names
    the first problem."""
    if value is None:
        return RedactionPolicy()
    if not isinstance(value, Mapping):
        raise InvalidInput("a redaction policy is an object with 'disabled' and 'patterns'")
    unknown = set(value) - {"disabled", "patterns"}
    if unknown:
        raise InvalidInput(
            f"unknown redaction policy key(s): {', '.join(sorted(map(str, unknown)))}",
            hint="a policy has 'disabled' (built-in detector names) and 'patterns'",
        )
    disabled = _disabled(value.get("disabled", []))
    raw = value.get("patterns", [])
    if not isinstance(raw, list):
        raise InvalidInput("'patterns' must be a list of {name, regex, placeholder}")
    if len(raw) > MAX_PATTERNS:
        raise InvalidInput(f"an org may have at most {MAX_PATTERNS} custom patterns")
    patterns = tuple(parse_pattern(p) for p in raw)
    names = [p.name for p in patterns]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidInput(f"custom pattern {dup!r} is defined twice")
    return RedactionPolicy(disabled, patterns)


def with_pattern(policy: RedactionPolicy, pattern: CustomPattern) -> RedactionPolicy:
    """``policy`` with ``pattern`` added, or replacing the one of the same name."""
    kept = tuple(p for p in policy.patterns if p.name != pattern.name)
    return parse_policy(
        {"disabled": list(policy.disabled), "patterns": [p.to_dict() for p in kept + (pattern,)]}
    )


def compile_policy(policy: RedactionPolicy, *, probe: bool = True) -> Redactor:
    """The Redactor of ``policy``: custom patterns first, then the enabled built-ins.
    InvalidInput for a pattern the safety checks refuse or one that matches a placeholder.
    ``probe=False`` skips the timing probe: a stored policy passed it when it was set, and a
    busy machine must not make an org's writes fail later."""
    from agent_sdk.governance.redact_safety import compile_safe

    custom = [
        Detector(p.name, p.placeholder, compile_safe(p.regex, p.name, probe=probe))
        for p in policy.patterns
    ]
    every_placeholder = set(BUILTIN_PLACEHOLDERS.values()) | {
        p.placeholder for p in policy.patterns
    }
    for d in custom:
        for placeholder in sorted(every_placeholder):
            if d.pattern.search(placeholder):
                raise InvalidInput(
                    f"custom pattern {d.name!r} matches the placeholder {placeholder}",
                    hint="a pattern must not match placeholders, or redacting redacted "
                    "text would change it",
                    pattern=d.name,
                )
    off = set(policy.disabled)
    builtin = [d for name in BUILTIN_NAMES if name not in off for d in BUILTINS[name]]
    return Redactor(custom + builtin)


def view(org_id: str, enabled: bool, policy: RedactionPolicy) -> RedactionView:
    """``policy`` as the API and the CLI show it, with every built-in detector's state."""
    return RedactionView(org_id, enabled, policy, tuple(builtin_detectors(policy.disabled)))


def parse_pattern(raw: Any) -> CustomPattern:
    if not isinstance(raw, Mapping):
        raise InvalidInput("a custom pattern is an object with 'name', 'regex' and 'placeholder'")
    unknown = set(raw) - {"name", "regex", "placeholder"}
    if unknown:
        raise InvalidInput(f"unknown custom pattern key(s): {', '.join(sorted(map(str, unknown)))}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid custom pattern name {str(name)[:64]!r}",
            hint="a name is 1-40 lower-case letters, digits or '_', starting with a letter",
        )
    if name in BUILTINS:
        raise InvalidInput(
            f"{name!r} is a built-in detector", hint="pick another name for a custom pattern"
        )
    regex = raw.get("regex")
    if not isinstance(regex, str):
        raise InvalidInput(f"custom pattern {name!r}: 'regex' must be a string")
    placeholder = raw.get("placeholder") or f"[{name.upper()}]"
    if not isinstance(placeholder, str) or not PLACEHOLDER.fullmatch(placeholder):
        raise InvalidInput(
            f"custom pattern {name!r}: invalid placeholder {str(placeholder)[:64]!r}",
            hint="a placeholder is [UPPER_CASE] (letters, digits, '_'; up to 40), e.g. "
            "[EMPLOYEE_ID]",
        )
    return CustomPattern(name, regex, placeholder)


def _disabled(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise InvalidInput("'disabled' must be a list of built-in detector names")
    for name in raw:
        if name not in BUILTINS:
            raise InvalidInput(
                f"unknown built-in detector {name[:64]!r}",
                hint="built-in detectors: " + ", ".join(BUILTIN_NAMES),
            )
    return tuple(n for n in BUILTIN_NAMES if n in raw)  # canonical order, no duplicates


def builtin_detectors(disabled: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The built-in detectors, for a policy's view: name, placeholder, what it finds, enabled."""
    off = set(disabled)
    return [
        {
            "name": name,
            "placeholder": BUILTIN_PLACEHOLDERS[name],
            "enabled": name not in off,
            "description": DESCRIPTIONS[name],
        }
        for name in BUILTIN_NAMES
    ]


# -- the per-process cache --------------------------------------------------------------------


@dataclass
class _Cached:
    redactor: Redactor
    loaded: float


@dataclass
class _StoreCache:
    entries: dict[str, _Cached] = field(default_factory=dict)
    # Bumped by each invalidation: a load that started before it does not store its result.
    generation: int = 0


class OrgSettings(Protocol):
    """Where an org's policy is kept: the one method of a Store that redaction reads. The core
    hands the store in; governance does not import the store layer."""

    def get_org_setting(self, org_id: str, name: str) -> Any: ...


_caches: weakref.WeakKeyDictionary[Any, _StoreCache] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_DEFAULT = Redactor.builtin()


def _clock() -> float:
    """The clock of the cache (tests step it past :data:`CACHE_SECONDS`)."""
    return time.monotonic()


def redactor_for(store: OrgSettings, org_id: str) -> Redactor:
    """The Redactor of ``org_id``'s policy in ``store``, cached for :data:`CACHE_SECONDS`."""
    now = _clock()
    with _lock:
        cache = _caches.get(store)
        if cache is None:
            cache = _caches[store] = _StoreCache()
        hit = cache.entries.get(org_id)
        if hit is not None and now - hit.loaded < CACHE_SECONDS:
            return hit.redactor
        generation = cache.generation
    raw = store.get_org_setting(org_id, SETTING)
    redactor = _DEFAULT if raw is None else compile_policy(parse_policy(raw), probe=False)
    with _lock:
        if cache.generation == generation:
            cache.entries[org_id] = _Cached(redactor, now)
    return redactor


def invalidate(store: OrgSettings, org_id: str) -> None:
    """Forget ``org_id``'s cached Redactor (its policy changed in this process)."""
    with _lock:
        cache = _caches.get(store)
        if cache is not None:
            cache.entries.pop(org_id, None)
            cache.generation += 1


def default_redactor() -> Redactor:
    """Every built-in detector: for logs, which have no org."""
    return _DEFAULT
