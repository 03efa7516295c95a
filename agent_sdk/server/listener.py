"""The one uvicorn configuration of agent-sdk's server: every process that serves the app (``up``,
``serve``, the test and benchmark servers) builds it here, so none of them can differ on what
follows, which are security decisions rather than tuning:

- **uvicorn's proxy handling is off** (``proxy_headers=False``). Left on, as uvicorn's default
  has it, uvicorn rewrites the client address from ``X-Forwarded-For`` whenever the peer is in
  ``FORWARDED_ALLOW_IPS`` (127.0.0.1 unless set), before the app runs: anyone on the machine
  could then pose as any address to IP allowlists and the audit log. The app alone decides, from
  ``AGENT_SDK_TRUSTED_PROXIES`` (:func:`agent_sdk.security.network.client_ip`).
- **Request heads are capped while they arrive** (:mod:`agent_sdk.server.http_protocol`):
  ``AGENT_SDK_MAX_HEADER_BYTES`` and ``AGENT_SDK_MAX_HEADER_COUNT``, answered with 431 before
  a big head is ever held in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn

    from agent_sdk.config import Settings

# Open event streams must not keep Ctrl-C (or a pod's SIGTERM) waiting forever.
GRACEFUL_SHUTDOWN_SECONDS = 5


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration that serves ``app``. ``options`` are passed on (``host``,
    ``port`` for the log; ``log_level``), and may not undo the choices of the module docstring."""
    import uvicorn

    fixed: dict[str, Any] = {"proxy_headers": False, "forwarded_allow_ips": []}
    try:
        from agent_sdk.server.http_protocol import head_limited
    except ImportError:  # uvicorn without httptools (not uvicorn[standard]): h11 parses
        # h11 refuses a head past this size (with a 400); it has no cap on the field count.
        fixed["http"] = "h11"
        fixed["h11_max_incomplete_event_size"] = settings.server.max_header_bytes
    else:
        fixed["http"] = head_limited(
            settings.server.max_header_bytes, settings.server.max_header_count
        )
    if overridden := sorted(set(options) & set(fixed)):
        raise ValueError(f"server_config does not let {', '.join(overridden)} be changed")
    defaults: dict[str, Any] = {
        "log_level": "warning",
        "lifespan": "on",
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }
    return uvicorn.Config(app, **{**defaults, **options, **fixed})


__all__ = ["GRACEFUL_SHUTDOWN_SECONDS", "server_config"]
