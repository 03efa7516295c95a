"""Governance: the tamper-evident audit log, PII redaction and envelope encryption at rest.
(Residency and retention are served from :mod:`agent_sdk.core`; what each feature shows a caller
is in :mod:`agent_sdk.records`.)

Modules, each imported on its own so that loading one costs only what it needs:

* :mod:`agent_sdk.governance.audit`: the record format (canonical JSON, the hash chain),
  secret scrubbing, and export / import of JSONL and CSV.
* :mod:`agent_sdk.governance.audit_verify`: :func:`verify_log`, which walks a log and its
  signed checkpoints and names the first bad record.
* :mod:`agent_sdk.governance.audit_signing`: the Ed25519 key that signs checkpoints (kept outside
  the database), imported lazily because ``cryptography`` is heavy. Checking a signature, and
  an anchor of checkpoints kept elsewhere, is in the leaf :mod:`agent_sdk.audit_anchor`, which
  the HTTP client uses too.
* :mod:`agent_sdk.governance.audit_sinks`: the JSONL file and stdout copies of the log.
* :mod:`agent_sdk.governance.redact`: PII redaction (:class:`Redactor`), with its detectors in
  ``redact_patterns`` (and their checksums in ``redact_checks``), org policies and their cache in
  ``redact_policy``, the safety checks of custom patterns in ``redact_safety``, and the
  log-record filter in ``redact_logs``; served by :mod:`agent_sdk.core.redaction`.
* :mod:`agent_sdk.governance.envelope`: envelope encryption at rest (master key, per-org KEK
  and DEK, the codec the store calls), against a small protocol of the store's key reads; key
  rotation, destruction and re-encryption drive the store, so they are in the core
  (:mod:`agent_sdk.core.encryption_keyring`, served by :mod:`agent_sdk.core.encryption`).

The service that ties these to a store is :class:`agent_sdk.core.audit.AuditService`.
"""
