-- 0003: the audit log and its signed checkpoints.
--
-- audit_log holds one row per audited action. seq counts 1, 2, 3, ... per org; the store
-- assigns it under the write lock, so an org's records form one gap-free sequence even when
-- several processes append at once. WITHOUT ROWID: the rows live in the (org_id, seq) b-tree,
-- so finding the last record of an org (for the next seq and the previous hash) is one seek at
-- the end of its range, and reading an org's log in order is one range scan.
--
-- No foreign key to orgs: the log must accept a record about an org that is unknown (a refused
-- request naming one) and must outlive an org that is deleted later.
--
-- With AGENT_SDK_AUDIT_HASH_CHAIN=true, hash = SHA-256 over prev_hash and the canonical JSON
-- of the record (see agent_sdk.governance.audit); both columns are NULL when the chain is off.
-- details is canonical JSON text, so the bytes read back are the bytes that were hashed.
CREATE TABLE audit_log (
    org_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    time        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    outcome     TEXT NOT NULL,
    request_id  TEXT,
    source_ip   TEXT,
    details     TEXT NOT NULL DEFAULT '{}',
    prev_hash   TEXT,
    hash        TEXT,
    PRIMARY KEY (org_id, seq)
) WITHOUT ROWID;

-- A checkpoint says "the first `seq` records of this org end in head_hash", signed with an
-- Ed25519 key that is kept outside the database. Someone who can write this database can
-- rewrite the chain and recompute every hash, but cannot sign a checkpoint for the rewrite, and
-- cannot drop records after a checkpoint without the log becoming shorter than it claims.
-- key_id is the fingerprint of the public key that verifies the signature.
CREATE TABLE audit_checkpoints (
    org_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    head_hash  TEXT NOT NULL,
    time       TEXT NOT NULL,
    signature  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
) WITHOUT ROWID;
