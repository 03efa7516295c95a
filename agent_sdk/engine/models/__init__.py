"""Model providers, chosen by the prefix of a model string: ``"provider:model"``.

Only the offline ``scripted`` provider ships in this version. The names of the planned ones are
known, so a model string naming them fails with "not available in this version" rather than a
"did you mean" guess.
"""

from __future__ import annotations

import difflib
from typing import Any

from agent_sdk.engine.models.base import ModelProvider
from agent_sdk.errors import ConfigError, PermissionDenied

AVAILABLE = ("scripted",)
# Providers the design names but this version does not ship yet.
PLANNED = ("openai", "anthropic")


def provider_name(model: str) -> str:
    """The provider part of a model string, checked: ``"scripted:x"`` -> ``"scripted"``.

    Raises :class:`ConfigError` for an empty string or a provider nobody has heard of.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigError("a model string is required, e.g. 'scripted'")
    name = model.split(":", 1)[0].strip().lower()
    if name not in AVAILABLE and name not in PLANNED:
        close = difflib.get_close_matches(name, AVAILABLE + PLANNED, n=1)
        raise ConfigError(
            f"unknown model provider {name!r} in model {model!r}",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + "available in this version: "
            + ", ".join(AVAILABLE),
        )
    return name


def get_provider(
    model: str,
    *,
    script: list[dict[str, Any]] | None = None,
    latency: float = 0.0,
    allow_model_requests: bool = True,
) -> ModelProvider:
    """The provider for a model string. ``script`` and ``latency`` configure ``scripted``."""
    name = provider_name(model)
    if name == "scripted":
        from agent_sdk.engine.models.scripted import ScriptedModel

        return ScriptedModel(script, latency)
    if not allow_model_requests:
        raise PermissionDenied(
            "real model requests are disabled (AGENT_SDK_ALLOW_MODEL_REQUESTS=false)",
            hint="use model 'scripted' for offline runs",
        )
    raise ConfigError(
        f"model provider {name!r} is not available in this version",
        hint="available providers: " + ", ".join(AVAILABLE),
    )


__all__ = ["AVAILABLE", "ModelProvider", "get_provider", "provider_name"]
