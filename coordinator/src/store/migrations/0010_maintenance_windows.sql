-- Maintenance windows: blocks scheduled ahead, once or recurring. target is
-- a host id, or '*' for the whole fleet. from_time: a one-off window's start,
-- or when a recurring one starts to apply; until: its end, or when the
-- recurrence stops (NULL: until removed). recurrence: NULL for a one-off
-- window, else {days, at, duration_sec, tz} as on the wire.
CREATE TABLE IF NOT EXISTS maintenance_windows (
    id          BIGSERIAL PRIMARY KEY,
    target      TEXT NOT NULL,
    reason      TEXT,
    from_time   DOUBLE PRECISION NOT NULL,
    until       DOUBLE PRECISION,
    recurrence  JSONB,
    created_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS maintenance_windows_target ON maintenance_windows (target);
