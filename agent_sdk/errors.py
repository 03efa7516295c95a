"""The one exception tree of agent-sdk.

Every error the library raises on purpose derives from :class:`AgentSDKError`, and every class
of it is defined here::

    AgentSDKError
    ├── InvalidInput            bad arguments, bad request bodies, bad agent definitions
    │   ├── ConfigError         a bad setting (names the variable or file key)
    │   └── BadRecord           a queue record this queue did not write (foreign or corrupt)
    ├── NotFound                no such object in this org (never reveals other orgs' objects)
    ├── Conflict                the object is not in a state that allows the action
    │   ├── Superseded          a run's attempt was taken over (or the run ended): it may not write
    │   └── KeyDestroyed        the value was sealed under a destroyed key: it is gone for good
    ├── AuthenticationError     no credential, or a credential that is not valid
    ├── PermissionDenied        a valid credential that may not do this
    │   └── WrongRegion         the org's data is served in another region (data residency)
    ├── QuotaExceeded           a limit was reached (rate, tokens, steps)
    │   ├── RateLimited         a key's rate limit, with the limiter's decision for the headers
    │   └── EventCapExceeded    a run reached its cap of events
    ├── BackendUnavailable      the store, the queue or the server cannot be reached or is locked
    │   └── QueueMissing        the queue does not exist (deleted while in use)
    ├── DecryptionFailed        a sealed value or a wrapped key does not decrypt
    ├── AgentImportError        a user's agents module raised while it was imported
    ├── ModelError              a model provider failed (``retryable`` says whether to try again)
    ├── ToolError               a tool failed; the message goes back to the model
    ├── RunNotSucceeded         a run the CLI watched ended failed or cancelled
    ├── AuditVerificationFailed ``audit verify`` found the log altered
    ├── SweepFailed             a retention sweep failed for an org (the others were swept)
    └── CopyMismatch            ``db copy`` read back other rows than it wrote (rolled back)

Driver errors (sqlite3, httpx, ...) are translated into this tree where they are caught, at the
backend boundary. Only the edges (CLI, HTTP server) turn these into exit codes and HTTP statuses,
each in one table (``agent_sdk.cli.main.exit_code``, ``agent_sdk.server.errors.STATUS``).

A subclass that keeps its parent's ``code`` travels over HTTP as its parent (a client rebuilds a
``KeyDestroyed`` as a ``Conflict``); one with a code of its own is rebuilt as itself.

One exception outside the tree stays on purpose: ``agent_sdk.server.errors.HTTPProblem``, a
Starlette ``HTTPException``. It carries refusals that belong to HTTP itself and to no domain (a
malformed header, a body or headers over the limits, answered 400, 413 and 431), and it must be
an ``HTTPException``: the body limit raises it while FastAPI reads the body, and FastAPI lets only
an ``HTTPException`` through its body parsing (it turns any other exception into its own 400).
The errors here know no HTTP status; that one is nothing but a status.
"""

from __future__ import annotations

from typing import Any


class AgentSDKError(Exception):
    """Base of every error raised by agent-sdk on purpose."""

    code = "error"
    title = "Internal error"

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out


class InvalidInput(AgentSDKError):
    code = "invalid_input"
    title = "Invalid input"


class ConfigError(InvalidInput):
    code = "config_error"
    title = "Invalid configuration"


class BadRecord(InvalidInput):
    """A record that is not a job this queue wrote (foreign or corrupt data on a Kafka topic)."""


class NotFound(AgentSDKError):
    code = "not_found"
    title = "Not found"


class Conflict(AgentSDKError):
    code = "conflict"
    title = "Conflict"


class Superseded(Conflict):
    """A write of one attempt of a run was refused: another attempt has taken the run over
    (the attempt counter, its fencing token, moved on) or the run has ended. The attempt
    stops where it is, writing nothing more; the attempt that superseded it carries on."""

    code = "superseded"
    title = "Attempt superseded"


class KeyDestroyed(Conflict):
    """The value was sealed under a key that was destroyed: it can never be read again."""


class AuthenticationError(AgentSDKError):
    code = "unauthenticated"
    title = "Authentication required"


class PermissionDenied(AgentSDKError):
    code = "permission_denied"
    title = "Permission denied"


class WrongRegion(PermissionDenied):
    """The org is pinned to a region this process does not serve (``AGENT_SDK_DATA_REGION``)."""

    code = "wrong_region"
    title = "Served in another region"


class QuotaExceeded(AgentSDKError):
    code = "quota_exceeded"
    title = "Limit exceeded"


class RateLimited(QuotaExceeded):
    """429, carrying the limiter's decision so the edge can render its headers."""

    def __init__(self, message: str, decision: Any, *, rate: float, burst: int) -> None:
        super().__init__(message, hint=f"retry after {decision.retry_after:.1f} s")
        # An agent_sdk.security.ratelimit.Decision (this module imports nothing of ours).
        self.decision = decision
        self.rate = rate
        self.burst = burst


class EventCapExceeded(QuotaExceeded):
    """A run reached the most events it may have (``AGENT_SDK_STREAM_MAX_EVENTS``)."""


class BackendUnavailable(AgentSDKError):
    code = "backend_unavailable"
    title = "Backend unavailable"


class Overloaded(BackendUnavailable):
    """Too much work is waiting already (run creations not yet written): retry shortly."""


class QueueMissing(BackendUnavailable):
    """A queue that does not exist (deleted while in use; a ConfigError when opening)."""


class AgentImportError(AgentSDKError):
    """A configured agents module was found but raised while importing: a bug in that module,
    not a bad setting (a module that does not exist is a :class:`ConfigError`)."""

    code = "agent_import_error"
    title = "Agents module failed to import"


class ModelError(AgentSDKError):
    code = "model_error"
    title = "Model provider error"

    def __init__(self, message: str, *, retryable: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retryable = retryable


class ToolError(AgentSDKError):
    code = "tool_error"
    title = "Tool error"


class DecryptionFailed(AgentSDKError):
    """A sealed value or a wrapped key does not decrypt: it was altered, or moved from another
    row, column or org. Never retried: the bytes will not change by themselves."""

    code = "decryption_failed"
    title = "Encrypted data cannot be read"


# -- outcomes the CLI reports as errors, each with an exit code of the CLI's table ---------------


class RunNotSucceeded(AgentSDKError):
    """A run the command watched ended failed or cancelled (exit code 5)."""

    code = "run_not_succeeded"
    title = "Run did not succeed"


class AuditVerificationFailed(AgentSDKError):
    """``audit verify`` found the log altered (exit code 1)."""

    code = "audit_verification_failed"
    title = "Audit log verification failed"


class SweepFailed(AgentSDKError):
    """An org's sweep failed (exit code 1); the other orgs were swept."""

    code = "retention_sweep_failed"
    title = "Retention sweep failed"


class CopyMismatch(AgentSDKError):
    """The destination did not read back what was written: the copy was rolled back."""

    code = "copy_mismatch"
    title = "Copy verification failed"


_BY_CODE: dict[str, type[AgentSDKError]] = {}


def _index(cls: type[AgentSDKError]) -> None:
    if "code" in vars(cls):  # a subclass without a code of its own travels as its parent
        _BY_CODE[cls.code] = cls
    for sub in cls.__subclasses__():
        _index(sub)


_index(AgentSDKError)


def error_from_code(code: str, message: str, **kw: Any) -> AgentSDKError:
    """Rebuild an error received over the wire (used by the HTTP backend)."""
    return _BY_CODE.get(code, AgentSDKError)(message, **kw)
