"""Access control: who a request is, and what it may do.

* :mod:`~agent_sdk.security.scopes`: the roles (``admin``, ``operator``, ``viewer``) and the
  scopes they grant, and the check every route and command makes (``require``).
* :mod:`~agent_sdk.security.api_key_secrets`: the secrets of API keys (``asdk_<id>_<secret>``
  plus a checksum): minting them, their offline checksum, and the keyed hash that is all the
  database ever holds of a secret.
* Rate limits, IP allowlists and JWT bearer tokens live beside them.

Nothing here reads the store or knows HTTP: :class:`agent_sdk.core.api_keys.KeyService` ties
keys to the store, and the server's dependencies turn a request into a
:class:`~agent_sdk.records.Principal`.
"""
