-- The lease wait queue, kept so that a request parked with `wait: true`
-- survives a coordinator restart or a failover with its place and ticket.
-- One row per waiter; the leader inserts a row before the reply that
-- reports the request as queued leaves, and deletes it before anything
-- reports its leave (grant, cancel, deadline, eviction, revoke), in
-- fenced transactions (the writer's epoch must be the election row's).
-- `rank` (0 HIGH, 1 NORMAL, 2 LOW) and `pos` (arrival order, kept across
-- leaders) give the queue order; `waiter` is the whole waiting request.
CREATE TABLE IF NOT EXISTS lease_queue (
    lease_id   text COLLATE "C" PRIMARY KEY,
    rank       smallint NOT NULL,
    pos        bigint NOT NULL,
    epoch      bigint NOT NULL,
    waiter     jsonb NOT NULL
);
