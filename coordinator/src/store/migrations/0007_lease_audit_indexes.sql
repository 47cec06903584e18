-- The lease audit trail is append-only and written in time order, at up to
-- tens of thousands of rows a second, so index upkeep is most of its cost:
-- * a BRIN index answers the time-range queries (ended leases at start-up,
--   retention) for a fraction of a B-tree's upkeep;
-- * lease ids are compared byte-wise (they are ASCII; locale-aware
--   comparison made each insert several times dearer), and plain denials,
--   which have no lease id, stay out of that index;
-- * the surrogate key goes: nothing refers to a row, and its sequence and
--   B-tree cost a fifth of every insert.
DROP INDEX IF EXISTS lease_events_at_idx;
CREATE INDEX IF NOT EXISTS lease_events_at_brin ON lease_events USING brin (at);
DROP INDEX IF EXISTS lease_events_lease_idx;
ALTER TABLE lease_events ALTER COLUMN lease_id TYPE TEXT COLLATE "C";
CREATE INDEX IF NOT EXISTS lease_events_lease_idx ON lease_events (lease_id)
    WHERE lease_id IS NOT NULL;
ALTER TABLE lease_events DROP COLUMN IF EXISTS id;
