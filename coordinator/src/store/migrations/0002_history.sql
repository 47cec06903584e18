-- History (docs/quiet.md, "History storage"). Times are Unix seconds.
-- The big tables are range-partitioned on t; the coordinator creates the
-- partitions ahead of time and drops them whole past retention.

-- Quiet samples, compactly: one row per host per flush, the samples in
-- parallel arrays (offset from t in seconds, score, state code
-- 0 QUIET 1 NORMAL 2 BUSY 3 PANIC).
CREATE TABLE IF NOT EXISTS quiet_samples (
    host_id TEXT             NOT NULL,
    t       DOUBLE PRECISION NOT NULL,
    t_end   DOUBLE PRECISION NOT NULL,
    dts     REAL[]           NOT NULL,
    scores  REAL[]           NOT NULL,
    states  SMALLINT[]       NOT NULL
) PARTITION BY RANGE (t);
CREATE INDEX IF NOT EXISTS quiet_samples_host_t ON quiet_samples (host_id, t);
-- Time-only scans (the rollup job): BRIN is tiny and cheap on append-only data.
CREATE INDEX IF NOT EXISTS quiet_samples_t ON quiet_samples USING brin (t);

-- Raw snapshots per metric group (host, process, api, addon:<id>).
CREATE TABLE IF NOT EXISTS stats_samples (
    host_id TEXT             NOT NULL,
    grp     TEXT             NOT NULL,
    t       DOUBLE PRECISION NOT NULL,
    payload JSONB            NOT NULL
) PARTITION BY RANGE (t);
CREATE INDEX IF NOT EXISTS stats_samples_host_grp_t ON stats_samples (host_id, grp, t);
CREATE INDEX IF NOT EXISTS stats_samples_t ON stats_samples USING brin (t);

-- Quiet rollups: one row per host per chunk (an hour by default) with the
-- per-step (a minute by default) count/avg/min/max in parallel arrays;
-- points and score_sum (over the steps' averages) feed the forecast.
CREATE TABLE IF NOT EXISTS quiet_rollups (
    host_id   TEXT             NOT NULL,
    t         DOUBLE PRECISION NOT NULL,
    step      DOUBLE PRECISION NOT NULL,
    points    INTEGER          NOT NULL,
    score_sum DOUBLE PRECISION NOT NULL,
    idx       INTEGER[]        NOT NULL,
    ns        INTEGER[]        NOT NULL,
    avgs      REAL[]           NOT NULL,
    mins      REAL[]           NOT NULL,
    maxs      REAL[]           NOT NULL,
    PRIMARY KEY (host_id, t)
) PARTITION BY RANGE (t);
CREATE INDEX IF NOT EXISTS quiet_rollups_t ON quiet_rollups USING brin (t);

-- Group rollups: one row per host, group and chunk; steps is
-- [{"i": step index, "n": samples, "f": {field: [avg, min, max]}}].
CREATE TABLE IF NOT EXISTS stats_rollups (
    host_id TEXT             NOT NULL,
    grp     TEXT             NOT NULL,
    t       DOUBLE PRECISION NOT NULL,
    step    DOUBLE PRECISION NOT NULL,
    steps   JSONB            NOT NULL,
    PRIMARY KEY (host_id, grp, t)
) PARTITION BY RANGE (t);

-- Quiet streaks (small: deleted in batches past retention).
CREATE TABLE IF NOT EXISTS quiet_streaks (
    host_id    TEXT             NOT NULL,
    start_time DOUBLE PRECISION NOT NULL,
    end_time   DOUBLE PRECISION NOT NULL,
    avg_score  REAL             NOT NULL,
    min_score  REAL             NOT NULL,
    PRIMARY KEY (host_id, start_time)
);
CREATE INDEX IF NOT EXISTS quiet_streaks_end ON quiet_streaks (end_time);

-- Small named values of the history jobs (the rollup watermark).
CREATE TABLE IF NOT EXISTS history_state (
    key   TEXT PRIMARY KEY,
    value DOUBLE PRECISION NOT NULL
);
