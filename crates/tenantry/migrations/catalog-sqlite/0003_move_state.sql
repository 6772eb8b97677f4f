-- Same column as the PostgreSQL catalog's; a SQLite deployment never moves tenants, so it
-- stays NULL there.
ALTER TABLE tenants ADD COLUMN move_state TEXT;
