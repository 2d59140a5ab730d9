-- GetPerson: a point SELECT of one of 1,000 records by primary key, every
-- column, as quartet-database's read runs it (`WHERE id = $1`).
\set n random(0, 999)
SELECT id, name, email, age, version, create_time, update_time FROM people WHERE id = :n;
