-- Audit trail of lease decisions and lifecycle, written in batches.
CREATE TABLE IF NOT EXISTS lease_events (
    id          BIGSERIAL PRIMARY KEY,
    at          DOUBLE PRECISION NOT NULL,
    kind        TEXT NOT NULL,
    lease_id    TEXT,
    addon_id    TEXT NOT NULL,
    job_type    TEXT NOT NULL,
    host_id     TEXT,
    cost_units  INTEGER NOT NULL,
    priority    TEXT NOT NULL,
    reason_code TEXT,
    reason      TEXT,
    detail      JSONB
);
CREATE INDEX IF NOT EXISTS lease_events_lease_idx ON lease_events (lease_id);
CREATE INDEX IF NOT EXISTS lease_events_at_idx ON lease_events (at);

-- The key that signs lease tokens, so a restarted coordinator can verify
-- the tokens its predecessor minted (see docs/leases.md).
CREATE TABLE IF NOT EXISTS lease_keys (
    id         INTEGER PRIMARY KEY,
    key_hex    TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
