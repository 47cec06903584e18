-- Leader election: one row holds the fencing epoch (incremented by every
-- takeover), the instance that leads, and when. Leadership itself is a
-- session advisory lock held by the leader on a dedicated connection; this
-- row makes the epoch durable and tells operators who leads.
CREATE TABLE IF NOT EXISTS lull_leader (
    id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    epoch       bigint NOT NULL DEFAULT 0,
    holder      text NOT NULL DEFAULT '',
    elected_at  timestamptz
);
INSERT INTO lull_leader (id) VALUES (1) ON CONFLICT (id) DO NOTHING;
