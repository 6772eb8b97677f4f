-- A poll may close at a set time: a scheduled job marks it closed, and votes after it are
-- refused.
ALTER TABLE polls ADD COLUMN closes_at timestamptz, ADD COLUMN closed boolean NOT NULL DEFAULT false;
