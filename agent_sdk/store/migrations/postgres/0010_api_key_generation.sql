-- 0010: the API-key generation counter (see the SQLite 0010: any change to a key that
-- authentication must see moves it, in the same transaction). One statement-level trigger
-- covers updates of those columns, deletes and TRUNCATE. The migration runner splits statements
-- with SQLite's rules, so the function body is a plain quoted string (SQLite knows no $$) and the
-- trigger is made with CREATE OR REPLACE (PostgreSQL 14+), which SQLite does not take for the
-- start of a trigger body that must end in END.

CREATE TABLE api_key_generation (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    value  BIGINT NOT NULL
);
INSERT INTO api_key_generation (id, value) VALUES (1, 0);

CREATE FUNCTION api_key_generation_bump() RETURNS trigger LANGUAGE plpgsql AS '
BEGIN
    UPDATE api_key_generation SET value = value + 1 WHERE id = 1;
    RETURN NULL;
END
';

CREATE OR REPLACE TRIGGER api_keys_changed
AFTER UPDATE OF id, org_id, secret_hash, previous_hash, previous_valid_until, role, scopes,
    rate_per_second, burst, ip_allowlist, expires_at, revoked_at OR DELETE OR TRUNCATE
ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION api_key_generation_bump();
