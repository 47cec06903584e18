-- Build regions (seeds 000 and 001): the facts (builds and bare fatigue
-- events, stored once per id), the imported history, operators' pardons,
-- and the persisted per-region aggregates. See docs/regions.md.

-- One sequence orders every build and event by commit, so a persisted
-- aggregate can say which records it already counts (`through_seq`).
CREATE SEQUENCE IF NOT EXISTS region_report_seq;

CREATE TABLE IF NOT EXISTS region_builds (
    build_id           TEXT PRIMARY KEY,
    region             TEXT NOT NULL,
    ts                 DOUBLE PRECISION NOT NULL,
    success            BOOLEAN NOT NULL,
    duration_minutes   DOUBLE PRECISION NOT NULL,
    queue_wait_minutes DOUBLE PRECISION NOT NULL,
    cost_usd           DOUBLE PRECISION,
    fatigues           INTEGER NOT NULL,
    -- false: a build kept by an imported region summary that already counts it
    counted            BOOLEAN NOT NULL DEFAULT true,
    record             JSONB NOT NULL,
    received_at        DOUBLE PRECISION NOT NULL,
    seq                BIGINT NOT NULL DEFAULT nextval('region_report_seq')
);
CREATE INDEX IF NOT EXISTS region_builds_region_ts_idx
    ON region_builds (region, ts DESC, build_id COLLATE "C" DESC);
CREATE INDEX IF NOT EXISTS region_builds_seq_idx ON region_builds (seq);

CREATE TABLE IF NOT EXISTS region_fatigue_events (
    event_id     TEXT PRIMARY KEY,
    region       TEXT NOT NULL,
    fatigue_time DOUBLE PRECISION NOT NULL,
    fatigue_type TEXT NOT NULL,
    record       JSONB NOT NULL,
    received_at  DOUBLE PRECISION NOT NULL,
    seq          BIGINT NOT NULL DEFAULT nextval('region_report_seq')
);
CREATE INDEX IF NOT EXISTS region_fatigue_events_region_idx
    ON region_fatigue_events (region, fatigue_time DESC);
CREATE INDEX IF NOT EXISTS region_fatigue_events_seq_idx ON region_fatigue_events (seq);

-- Region summaries adopted by an import (the baseline new builds add to).
CREATE TABLE IF NOT EXISTS region_baselines (
    region      TEXT PRIMARY KEY,
    stats       JSONB NOT NULL,
    imported_at DOUBLE PRECISION NOT NULL
);

-- Campaign-level state: the imported campaign baseline and how far the
-- persisted aggregates reach in region_report_seq.
CREATE TABLE IF NOT EXISTS region_campaign (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    baseline    JSONB NOT NULL,
    through_seq BIGINT NOT NULL DEFAULT 0,
    updated_at  DOUBLE PRECISION NOT NULL
);

-- The persisted aggregate of each region (a cache of the facts above:
-- everything up to region_campaign.through_seq), and its outlaw verdict.
CREATE TABLE IF NOT EXISTS region_aggregates (
    region        TEXT PRIMARY KEY,
    aggregate     JSONB NOT NULL,
    total_builds  BIGINT NOT NULL,
    successes     BIGINT NOT NULL,
    fatigue_incidents BIGINT NOT NULL,
    outlawed      BOOLEAN NOT NULL DEFAULT false,
    outlaw_reason TEXT,
    updated_at    DOUBLE PRECISION NOT NULL
);

-- Operators' pardons (`lullctl regions pardon R`): the latest per region.
CREATE TABLE IF NOT EXISTS region_pardons (
    region      TEXT PRIMARY KEY,
    pardon      JSONB NOT NULL,
    pardoned_at DOUBLE PRECISION NOT NULL
);
