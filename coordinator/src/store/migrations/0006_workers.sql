-- Worker execution reports (seed 003), stored once per execution_id. The
-- report is kept as received; scores, learning metrics and anomalies are
-- filled in the same transaction that inserted the row.
CREATE TABLE IF NOT EXISTS worker_executions (
    execution_id  TEXT PRIMARY KEY,
    worker_name   TEXT NOT NULL,
    host_id       TEXT,
    started_at    DOUBLE PRECISION NOT NULL,
    completed_at  DOUBLE PRECISION NOT NULL,
    outcome       TEXT NOT NULL,
    duration_ms   DOUBLE PRECISION NOT NULL,
    received_at   DOUBLE PRECISION NOT NULL,
    overall_score DOUBLE PRECISION,
    quality_level TEXT,
    report        JSONB NOT NULL,
    scores        JSONB,
    learning      JSONB,
    anomalies     JSONB
);
CREATE INDEX IF NOT EXISTS worker_executions_worker_idx
    ON worker_executions (worker_name, started_at DESC, execution_id DESC);
CREATE INDEX IF NOT EXISTS worker_executions_started_idx
    ON worker_executions (started_at);
CREATE INDEX IF NOT EXISTS worker_executions_outcome_idx
    ON worker_executions (outcome);

-- The per-worker aggregate (one JSON document per worker), written in the
-- same transaction as the executions it counts.
CREATE TABLE IF NOT EXISTS worker_aggregates (
    worker_name TEXT PRIMARY KEY,
    executions  BIGINT NOT NULL,
    doc         JSONB NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);
