-- UpdatePerson with the expected version, and its change-log row: each client
-- updates its own record only at the version it last saw (:version, from the
-- previous transaction's RETURNING); a mismatch returns no row, and \gset then
-- fails the client, so every counted transaction passed the check.
\set uid 1000000 + :client_id
WITH updated AS (
    UPDATE people SET name = 'Bench Mark ' || (version + 1), version = version + 1, update_time = now()
    WHERE id = :uid AND version = :version
    RETURNING *
)
INSERT INTO people_changes (revision, kind, id, name, email, age, version, create_time, update_time, commit_time)
SELECT nextval('pgbench_revision'), 2, updated.*, now() FROM updated
RETURNING version \gset
