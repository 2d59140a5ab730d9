-- CreatePerson's INSERT alone: no change log (a reference, not the target).
\set key random(10000000, 9000000000000000000)
INSERT INTO people (id, name, email, age, version, create_time, update_time)
VALUES (:key, 'Bench Mark', 'bench@example.com', 33, 1, now(), now());
