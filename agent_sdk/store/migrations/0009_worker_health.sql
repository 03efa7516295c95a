-- 0009: a worker's health beside its liveness, for `agent-sdk status`.
--
-- A worker that cannot reach its queue stays up and keeps beating (its heartbeat goes to this
-- store, not the queue), so "alive" alone would hide that it takes no work. It writes 'ok' or
-- 'queue unreachable' with each heartbeat; rows of older workers read 'ok'.
ALTER TABLE workers ADD COLUMN health TEXT NOT NULL DEFAULT 'ok';
