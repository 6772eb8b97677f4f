-- no-transaction
-- The platform around tenants, as in PostgreSQL's 0008: pending and deleted tenants, the
-- console's operators and their sessions, the audit log. SQLite cannot change a CHECK
-- constraint, so the tenants table is rebuilt as in 0004, with foreign keys off so that
-- dropping the old table does not cascade to the domains.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE tenants_rebuilt (
    id BLOB PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    isolation TEXT NOT NULL CHECK (isolation IN ('database', 'dedicated')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'pending', 'deleted')),
    settings TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    server TEXT CHECK (server IS NULL),
    database_name TEXT NOT NULL UNIQUE,
    migration_version INTEGER,
    migration_fingerprint TEXT,
    migrated_at TEXT,
    moving boolean NOT NULL DEFAULT false,
    move_state TEXT,
    deleted_at TEXT
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

CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE operator_sessions (
    id TEXT PRIMARY KEY,
    operator TEXT NOT NULL REFERENCES operators ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_target_idx ON audit_log (target, at);
COMMIT;
PRAGMA foreign_keys = ON;
