-- Every host that ever reported, with when it was first and last seen.
CREATE TABLE IF NOT EXISTS hosts (
    host_id    TEXT PRIMARY KEY,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen  DOUBLE PRECISION NOT NULL
);
