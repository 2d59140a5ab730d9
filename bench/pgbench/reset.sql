-- Before each update run: every client's record back to version 1, which is
-- where the scripts' :version variable starts (pgbench -D version=1).
UPDATE people SET version = 1
WHERE id IN (SELECT (1000000 + c)::text FROM generate_series(0, :clients - 1) AS c);
