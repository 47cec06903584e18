-- Operator blocks: target is a host id, or '*' for the whole fleet (host ids
-- cannot contain '*'). until: Unix seconds when the block lifts by itself.
CREATE TABLE IF NOT EXISTS host_blocks (
    target     TEXT PRIMARY KEY,
    reason     TEXT,
    until      DOUBLE PRECISION,
    blocked_at DOUBLE PRECISION NOT NULL
);
