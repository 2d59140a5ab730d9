-- UpdatePerson's versioned UPDATE alone: no change log (a reference, not the
-- target). The version check works as in update.sql.
\set uid 1000000 + :client_id
UPDATE people SET name = 'Bench Mark ' || (version + 1), version = version + 1, update_time = now()
WHERE id = :uid AND version = :version
RETURNING version \gset
