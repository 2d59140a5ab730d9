-- CreatePerson with the bookkeeping a watchable write needs: the row and its
-- change-log row (numbered by a sequence) in one transaction, one statement.
-- The id is a random key; a duplicate fails the client (pgbench reports it).
\set key random(10000000, 9000000000000000000)
WITH created AS (
    INSERT INTO people (id, name, email, age, version, create_time, update_time)
    VALUES (:key, 'Bench Mark', 'bench@example.com', 33, 1, now(), now())
    RETURNING *
)
INSERT INTO people_changes (revision, kind, id, name, email, age, version, create_time, update_time, commit_time)
SELECT nextval('pgbench_revision'), 1, created.*, now() FROM created;
