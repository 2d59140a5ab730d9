-- The rows the pgbench scripts read and update, in the tables quartet-database
-- created (its migrations ran on this database first), and the sequence that
-- numbers the change log in the logged scripts. psql -v clients=64.
CREATE SEQUENCE pgbench_revision;
-- select.sql reads ids '0' to '999' (db-get reads 1,000 records too).
INSERT INTO people (id, name, email, age, version, create_time, update_time)
SELECT i::text, 'Bench Mark', NULL, NULL, 1, now(), now()
FROM generate_series(0, 999) AS i;
-- update*.sql: one record per client, '1000000' + client_id (db-update gives
-- each worker a record of its own).
INSERT INTO people (id, name, email, age, version, create_time, update_time)
SELECT (1000000 + c)::text, 'Bench Mark', 'bench@example.com', 33, 1, now(), now()
FROM generate_series(0, :clients - 1) AS c;
