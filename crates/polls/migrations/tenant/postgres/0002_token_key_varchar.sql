-- Token keys are compared with text parameters; as varchar the primary key index serves the
-- lookup without a cast in the query, so the same SQL runs on SQLite.
ALTER TABLE tokens ALTER COLUMN key TYPE varchar(40);
