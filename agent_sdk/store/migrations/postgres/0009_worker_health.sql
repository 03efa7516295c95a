-- 0009: a worker's health beside its liveness, for `agent-sdk status` (see the SQLite 0009).
ALTER TABLE workers ADD COLUMN health TEXT NOT NULL DEFAULT 'ok';
