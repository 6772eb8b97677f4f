-- no-transaction
-- Dedicated tenants (a SQLite file and a server process each) join database tenants, with
-- the table where their servers are published, as in PostgreSQL's catalog. SQLite
-- cannot change a CHECK constraint, so the table is rebuilt, with foreign keys off so that
-- dropping the old table does not cascade to the domains (which then refer to the new one).
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE tenants_rebuilt (
    id BLOB PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    isolation TEXT NOT NULL CHECK (isolation IN ('database', 'dedicated')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
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

-- The dedicated tenants' servers each supervising process runs, by machine.
CREATE TABLE dedicated_servers (
    tenant_id BLOB NOT NULL REFERENCES tenants ON DELETE CASCADE,
    host TEXT NOT NULL,
    pid INTEGER,
    port INTEGER,
    started_at TEXT,
    restarts INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, host)
);
COMMIT;
PRAGMA foreign_keys = ON;
