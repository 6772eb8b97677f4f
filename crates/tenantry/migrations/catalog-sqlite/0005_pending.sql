-- no-transaction
-- Pending tenants: provisioned ahead of signups, invisible until one takes them. SQLite
-- cannot change a CHECK constraint, so the table is rebuilt as in 0004, with foreign keys
-- off so that dropping the old table does not cascade to the domains.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE tenants_rebuilt (
    id BLOB PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    isolation TEXT NOT NULL CHECK (isolation IN ('database', 'dedicated')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'pending')),
    settings TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    server TEXT CHECK (server IS NULL),
    database_name TEXT NOT NULL UNIQUE,
    migration_version INTEGER,
    migration_fingerprint TEXT,
    migrated_at TEXT,
    moving boolean NOT NULL DEFAULT false,
    move_state TEXT
);
INSERT INTO tenants_rebuilt (id, slug, name, schema_name, isolation, status, settings,
    created_at, server, database_name, migration_version, migration_fingerprint,
    migrated_at, moving, move_state)
SELECT id, slug, name, schema_name, isolation, status, settings, created_at, server,
    database_name, migration_version, migration_fingerprint, migrated_at, moving, move_state
FROM tenants;
DROP TABLE tenants;
ALTER TABLE tenants_rebuilt RENAME TO tenants;

CREATE INDEX tenants_pending_idx ON tenants (isolation, created_at) WHERE status = 'pending';
COMMIT;
PRAGMA foreign_keys = ON;
