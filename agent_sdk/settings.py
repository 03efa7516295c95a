"""The shape of :class:`Settings`: one frozen dataclass per feature or backend.

:mod:`agent_sdk.config` builds a Settings from flags, the environment and config files; this
module only says what a Settings holds. Each group gathers the settings one part of the product
reads (``settings.queue.kafka.topic``, ``settings.jwt.secret``), so a part receives its group
and a new backend adds a group instead of more top-level fields.

The environment variables and config-file keys keep their flat public names
(``AGENT_SDK_KAFKA_TOPIC``, ``kafka_topic = ...``); :data:`FLAT` maps each flat name to where it
lives here, and :meth:`Settings.replace` takes flat names as well as groups::

    settings.replace(worker_lease=5.0)              # the same as
    settings.replace(worker=dataclasses.replace(settings.worker, lease=5.0))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from agent_sdk.errors import ConfigError


class _Group:
    """What each settings class shares instead of having :func:`dataclass` write it per class.

    Every CLI call loads this module, and a frozen dataclass's generated ``__repr__``,
    ``__eq__`` and ``__hash__`` cost about half of its creation (roughly 0.4 ms each, 7 ms for
    the 18 classes here). These generic ones behave alike: the fields with ``repr=True`` in
    order, equality and hash over the fields with ``compare=True``, same class only. (Each
    class also has a docstring: without one, dataclass builds it from the class's signature.)"""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def _compared(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self) if f.compare)

    def __repr__(self) -> str:
        shown = (f for f in dataclasses.fields(self) if f.repr)
        body = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in shown)
        return f"{type(self).__qualname__}({body})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, _Group)
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class ClientSettings(_Group):
    """How the CLI reaches a Backend."""

    # Where the CLI sends its commands: "auto" uses a server started by `agent-sdk up` if one
    # runs on this machine, else the local database; "local" or "http" force one.
    backend: str = "auto"
    server_url: str = "http://127.0.0.1:8765"
    api_key: str | None = field(default=None, repr=False)
    # A file holding the API key instead (read at load; one trailing newline stripped).
    api_key_file: str | None = None
    # The org commands act in. None: the credential's own org (over HTTP), "default" locally.
    org_id: str | None = None


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class StoreSettings(_Group):
    """The database of runs, events, keys and audit records."""

    backend: str = "sqlite"  # AGENT_SDK_STORAGE_BACKEND
    database_url: str = ""
    sqlite_busy_timeout: float = 5.0

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file of ``database_url`` (``sqlite:///path``)."""
        url = self.database_url
        if not url.startswith("sqlite:///"):
            from agent_sdk.masking import mask_url  # a Postgres URL may hold a password

            raise ConfigError(
                f"AGENT_SDK_DATABASE_URL={mask_url(url)!r} is not a SQLite URL",
                hint="use sqlite:///path/to/agent-sdk.db",
            )
        return Path(url[len("sqlite:///") :])


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class AwsEnvironment(_Group):
    """The AWS variables the SQS queue reads besides boto3's own chain, under their AWS names
    (no ``AGENT_SDK_`` prefix, no config-file keys): where its requests go, and the region."""

    endpoint_url_sqs: str | None = None  # AWS_ENDPOINT_URL_SQS
    endpoint_url: str | None = None  # AWS_ENDPOINT_URL
    region: str | None = None  # AWS_REGION
    default_region: str | None = None  # AWS_DEFAULT_REGION

    @property
    def sqs_endpoint(self) -> str | None:
        return self.endpoint_url_sqs or self.endpoint_url or None

    @property
    def any_region(self) -> str | None:
        return self.region or self.default_region or None


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class SqsSettings(_Group):
    """The Amazon SQS queue: AGENT_SDK_SQS_*."""

    # The jobs' queue URL, and the dead-letter queue's (default <name>-dead)
    queue_url: str | None = None
    dead_queue_url: str | None = None
    # AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION
    aws: AwsEnvironment = field(default_factory=AwsEnvironment, repr=False)


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class KafkaSettings(_Group):
    """The Kafka queue: AGENT_SDK_KAFKA_*."""

    # The brokers (host:port,... or a kafka:// URL with client options) and the jobs' topic
    bootstrap_servers: str | None = None
    topic: str = "agent-sdk-jobs"


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class QueueSettings(_Group):
    """The queue of the queue mode, and each queue backend's own settings. (The Redis queue's
    URL is :attr:`Settings.redis_url`, which the rate limits share.)"""

    backend: str = "sqlite"  # AGENT_SDK_QUEUE_BACKEND
    # The SQLite queue's file (relative: under data_dir; see Settings.queue_sqlite_path)
    db_path: str = "queue.db"
    sqs: SqsSettings = field(default_factory=SqsSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class ExecutionSettings(_Group):
    """Where runs execute and how many at once."""

    mode: str = "inline"  # AGENT_SDK_EXECUTION_MODE: "inline" or "queue"
    max_concurrent_runs: int = 64
    # On start, re-queue runs left behind by a dead process (AGENT_SDK_RUN_RECOVERY_ENABLED)
    recovery_enabled: bool = True


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class WorkerSettings(_Group):
    """The ``worker`` host: its processes, their restarts and their leases."""

    count: int = 4
    # worker --count N gives up (exit 1) past this many restarts of dead workers in the window
    restart_limit: int = 5
    restart_window: float = 60.0
    # Seconds a worker holds a run between heartbeats before another may take it over
    lease: float = 30.0


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class RetrySettings(_Group):
    """Retries of a run after a retryable failure: AGENT_SDK_RETRY_*."""

    max: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class EngineSettings(_Group):
    """What one run of the agent loop may do: its budget, its agents, its tools."""

    max_steps: int = 20
    max_tokens: int = 100_000
    agents: tuple[str, ...] = ()
    agents_file: str | None = None  # AGENT_SDK_AGENTS_PATH
    allow_model_requests: bool = True
    fs_allowlist: tuple[str, ...] = (".",)
    http_allowlist: tuple[str, ...] = ()
    http_timeout: float = 10.0


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class StreamSettings(_Group):
    """Live events: AGENT_SDK_STREAM_*."""

    queue_size: int = 1000  # events buffered per live subscriber
    max_events: int = 100_000  # events one run may write


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class ServerSettings(_Group):
    """The HTTP server: where it listens and what a request may hold."""

    host: str = "127.0.0.1"
    port: int = 8765
    max_body_bytes: int = 1_048_576
    # Request heads (request line and header fields): their bytes and their number of fields.
    # Enforced while a head arrives, before it is buffered whole (agent_sdk.server.http_protocol).
    max_header_bytes: int = 65_536
    max_header_count: int = 100
    # /docs, /redoc and /openapi.json without a credential. None: on under `agent-sdk up` (a
    # developer's own machine), off under `serve`; off, /openapi.json needs any credential.
    docs_enabled: bool | None = None
    # Seconds an Idempotency-Key of run creation is remembered; a retry after that is new.
    idempotency_ttl: float = 86_400.0
    # CIDRs of the reverse proxies whose X-Forwarded-For is believed
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class AuthSettings(_Group):
    """API keys: the server's pepper, and the role and scopes of the bootstrap key."""

    api_key_pepper: str | None = field(default=None, repr=False)
    api_key_pepper_file: str | None = None
    api_key_role: str = "admin"  # API_KEY_ROLE
    api_key_scopes: tuple[str, ...] = ()  # API_KEY_SCOPES


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class JwtSettings(_Group):
    """Bearer JWTs as credentials (HS256): AGENT_SDK_JWT_*."""

    enabled: bool = False
    secret: str | None = field(default=None, repr=False)
    secret_file: str | None = None
    issuer: str = "agent-sdk"
    audience: str = "agent-sdk"
    leeway: float = 30.0
    # Longest a JWT may be valid (exp - iat), in seconds: a day covers any session token
    max_lifetime: float = 86_400.0


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class AuditSettings(_Group):
    """The audit log: where records also go, the hash chain and signed checkpoints."""

    log_path: str | None = None
    log_stdout: bool = False
    # On by default: it costs about 20 us per record (docs/benchmarks.md), and `audit verify`
    # has nothing to check without it.
    hash_chain: bool = True
    signing_key: str | None = None
    checkpoint_every: int = 100
    # A checkpoint at least this often (seconds) while records arrive, and servers and workers
    # sign idle logs on the same period: bounds how long a record stays unsigned. 0: only every N.
    checkpoint_seconds: float = 60.0


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class RetentionSettings(_Group):
    """Sweeps of the orgs' retention policies."""

    # Seconds between sweeps of the orgs' policies in servers and workers (0: none), and the
    # rows each write transaction of a sweep deletes at most
    sweep_interval: float = 3600.0
    batch_size: int = 500
    # Events kept per finished run, for every org (AGENT_SDK_EVENT_RETENTION_MAX_EVENTS)
    max_events_per_run: int | None = None


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class EncryptionSettings(_Group):
    """Encryption at rest: the master key (base64 of 32 bytes, or a file holding it) stays
    outside the database; unwrapped org keys are cached for ``key_cache_ttl`` seconds."""

    enabled: bool = False
    master_key: str | None = field(default=None, repr=False)
    master_key_file: str | None = None
    key_cache_ttl: float = 60.0


@dataclass(frozen=True, repr=False, eq=False)  # repr, eq, hash: _Group
class Settings(_Group):
    """Every setting of agent-sdk, by group. Built by :func:`agent_sdk.config.load_settings`;
    never mutated."""

    profile: str = "default"
    data_dir: str = ""
    # Data residency: the region this process serves (None: every region)
    data_region: str | None = None
    # Redis: the queue of AGENT_SDK_QUEUE_BACKEND=redis, and rate limits shared between servers
    redis_url: str | None = None
    # PII redaction: run inputs, outputs and event payloads are redacted before they are
    # stored, and log records before they are written (agent_sdk.governance.redact)
    pii_redaction_enabled: bool = False
    debug: bool = False
    client: ClientSettings = field(default_factory=ClientSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    jwt: JwtSettings = field(default_factory=JwtSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    encryption: EncryptionSettings = field(default_factory=EncryptionSettings)
    # Not a setting: what load_settings found worth telling (unknown AGENT_SDK_* variables,
    # secrets in config files, files others can read). The process host prints them once.
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``: fields of Settings (``data_dir=``, ``queue=QueueSettings()``)
        or public setting names (``kafka_topic=``, ``worker_lease=``; see :data:`FLAT`)."""
        own = {k: v for k, v in changes.items() if k in _OWN}
        out = dataclasses.replace(self, **own) if own else self
        flat = {k: v for k, v in changes.items() if k not in _OWN}
        return _with_flat(out, flat) if flat else out

    @property
    def queue_sqlite_path(self) -> Path:
        """The SQLite queue's file: AGENT_SDK_QUEUE_DB_PATH, relative to the data directory."""
        path = Path(self.queue.db_path or "queue.db").expanduser()
        return path if path.is_absolute() else Path(self.data_dir) / path

    @property
    def admin_token_path(self) -> Path:
        return Path(self.data_dir) / "admin-token"

    @property
    def pepper_path(self) -> Path:
        """Where the server keeps its API-key pepper when AGENT_SDK_API_KEY_PEPPER is unset."""
        return Path(self.data_dir) / "api-key-pepper"

    @property
    def audit_signing_key_path(self) -> Path:
        """The Ed25519 key that signs audit checkpoints: outside the database on purpose."""
        return Path(self.audit.signing_key or Path(self.data_dir) / "audit-signing.key")

    @property
    def server_state_path(self) -> Path:
        return Path(self.data_dir) / "server.json"


_OWN = frozenset(f.name for f in dataclasses.fields(Settings))

# Public setting name (the config-file key; AGENT_SDK_<NAME> in the environment) -> its place
# in Settings. Names that are fields of Settings itself (profile, data_dir, ...) are their own.
FLAT: dict[str, tuple[str, ...]] = {
    "backend": ("client", "backend"),
    "server_url": ("client", "server_url"),
    "api_key": ("client", "api_key"),
    "api_key_file": ("client", "api_key_file"),
    "org_id": ("client", "org_id"),
    "storage_backend": ("store", "backend"),
    "database_url": ("store", "database_url"),
    "sqlite_busy_timeout": ("store", "sqlite_busy_timeout"),
    "execution_mode": ("execution", "mode"),
    "max_concurrent_runs": ("execution", "max_concurrent_runs"),
    "run_recovery_enabled": ("execution", "recovery_enabled"),
    "queue_backend": ("queue", "backend"),
    "queue_db_path": ("queue", "db_path"),
    "sqs_queue_url": ("queue", "sqs", "queue_url"),
    "sqs_dead_queue_url": ("queue", "sqs", "dead_queue_url"),
    "kafka_bootstrap_servers": ("queue", "kafka", "bootstrap_servers"),
    "kafka_topic": ("queue", "kafka", "topic"),
    "worker_count": ("worker", "count"),
    "worker_restart_limit": ("worker", "restart_limit"),
    "worker_restart_window": ("worker", "restart_window"),
    "worker_lease": ("worker", "lease"),
    "retry_max": ("retry", "max"),
    "retry_base_delay": ("retry", "base_delay"),
    "retry_max_delay": ("retry", "max_delay"),
    "max_steps": ("engine", "max_steps"),
    "max_tokens": ("engine", "max_tokens"),
    "agents": ("engine", "agents"),
    "agents_file": ("engine", "agents_file"),
    "allow_model_requests": ("engine", "allow_model_requests"),
    "fs_allowlist": ("engine", "fs_allowlist"),
    "http_allowlist": ("engine", "http_allowlist"),
    "http_timeout": ("engine", "http_timeout"),
    "stream_queue_size": ("stream", "queue_size"),
    "stream_max_events": ("stream", "max_events"),
    "host": ("server", "host"),
    "port": ("server", "port"),
    "max_body_bytes": ("server", "max_body_bytes"),
    "max_header_bytes": ("server", "max_header_bytes"),
    "max_header_count": ("server", "max_header_count"),
    "docs_enabled": ("server", "docs_enabled"),
    "idempotency_ttl": ("server", "idempotency_ttl"),
    "trusted_proxies": ("server", "trusted_proxies"),
    "api_key_pepper": ("auth", "api_key_pepper"),
    "api_key_pepper_file": ("auth", "api_key_pepper_file"),
    "api_key_role": ("auth", "api_key_role"),
    "api_key_scopes": ("auth", "api_key_scopes"),
    "jwt_enabled": ("jwt", "enabled"),
    "jwt_secret": ("jwt", "secret"),
    "jwt_secret_file": ("jwt", "secret_file"),
    "jwt_issuer": ("jwt", "issuer"),
    "jwt_audience": ("jwt", "audience"),
    "jwt_leeway": ("jwt", "leeway"),
    "jwt_max_lifetime": ("jwt", "max_lifetime"),
    "audit_log_path": ("audit", "log_path"),
    "audit_log_stdout": ("audit", "log_stdout"),
    "audit_hash_chain": ("audit", "hash_chain"),
    "audit_signing_key": ("audit", "signing_key"),
    "audit_checkpoint_every": ("audit", "checkpoint_every"),
    "audit_checkpoint_seconds": ("audit", "checkpoint_seconds"),
    "retention_sweep_interval": ("retention", "sweep_interval"),
    "retention_batch_size": ("retention", "batch_size"),
    "event_retention_max_events": ("retention", "max_events_per_run"),
    "encryption_enabled": ("encryption", "enabled"),
    "encryption_master_key": ("encryption", "master_key"),
    "encryption_master_key_file": ("encryption", "master_key_file"),
    "encryption_key_cache_ttl": ("encryption", "key_cache_ttl"),
}


def _with_flat(obj: Any, changes: Mapping[str, Any]) -> Any:
    """``obj`` with each public name of ``changes`` set where :data:`FLAT` puts it."""
    paths: dict[tuple[str, ...], Any] = {}
    for name, value in changes.items():
        if name not in FLAT:
            raise TypeError(f"Settings has no setting {name!r}")
        paths[FLAT[name]] = value
    return _set(obj, paths)


def _set(obj: Any, paths: Mapping[tuple[str, ...], Any]) -> Any:
    here: dict[str, Any] = {}
    below: dict[str, dict[tuple[str, ...], Any]] = {}
    for path, value in paths.items():
        if len(path) == 1:
            here[path[0]] = value
        else:
            below.setdefault(path[0], {})[path[1:]] = value
    for name, sub in below.items():
        here[name] = _set(getattr(obj, name), sub)
    return dataclasses.replace(obj, **here)


def flat_value(settings: Settings, name: str) -> Any:
    """The value of the public setting ``name`` (``kafka_topic``) in ``settings``."""
    obj: Any = settings
    for part in FLAT.get(name, (name,)):
        obj = getattr(obj, part)
    return obj


__all__ = [
    "FLAT",
    "AuditSettings",
    "AuthSettings",
    "AwsEnvironment",
    "ClientSettings",
    "EncryptionSettings",
    "EngineSettings",
    "ExecutionSettings",
    "JwtSettings",
    "KafkaSettings",
    "QueueSettings",
    "RetentionSettings",
    "RetrySettings",
    "ServerSettings",
    "Settings",
    "SqsSettings",
    "StoreSettings",
    "StreamSettings",
    "WorkerSettings",
    "flat_value",
]
