-- Same column as the PostgreSQL catalog's; a SQLite deployment never moves tenants, so it
-- stays false there.
ALTER TABLE tenants ADD COLUMN moving boolean NOT NULL DEFAULT false;
