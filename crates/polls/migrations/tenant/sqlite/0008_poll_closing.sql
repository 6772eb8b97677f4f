-- The PostgreSQL set's 0008 in SQLite's types.
ALTER TABLE polls ADD COLUMN closes_at TEXT;
ALTER TABLE polls ADD COLUMN closed BOOLEAN NOT NULL DEFAULT FALSE;
