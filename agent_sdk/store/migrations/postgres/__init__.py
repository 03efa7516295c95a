"""Versioned schema migrations of the Postgres store: the same versions and names as the SQLite
ones beside this package, so ``agent-sdk db status`` means the same on both engines.

Ids are declared ``COLLATE "C"``: ids are mixed-case base62 that begin with their creation time,
and only byte order keeps them in time order (keyset pagination relies on it). JSON columns are
``text`` holding compact JSON, so the row converters are shared with the SQLite store.
"""
