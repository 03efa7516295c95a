-- 0008: where a pruned audit log now begins.
--
-- A retention policy may delete an org's oldest audit records. The verifier walks the hash chain
-- from record 1, so after such a cut it needs a trusted starting point: one signed anchor per
-- org saying "the log now starts after record `seq`, whose hash was `head_hash`". It is written
-- in the transaction that deletes the records (and replaced by each later cut), and signed with
-- the checkpoint key (kept outside the database), so someone who can only write the database
-- cannot cut records off the head and pass the cut off as retention.
-- head_hash is NULL when the last removed record predates the hash chain.
CREATE TABLE audit_anchors (
    org_id     TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    head_hash  TEXT,
    time       TEXT NOT NULL,
    signature  TEXT NOT NULL,
    key_id     TEXT NOT NULL
) WITHOUT ROWID;
