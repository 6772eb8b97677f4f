-- The tenant catalog of a SQLite deployment: the PostgreSQL catalog's tables, in one file.
-- Only database-mode tenants live here, each in its own file under the data directory.

CREATE TABLE tenants (
    id BLOB PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    isolation TEXT NOT NULL CHECK (isolation = 'database'),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    settings TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    server TEXT CHECK (server IS NULL),
    database_name TEXT NOT NULL UNIQUE,
    migration_version INTEGER,
    migration_fingerprint TEXT,
    migrated_at TEXT
);

CREATE TABLE domains (
    domain TEXT PRIMARY KEY,
    tenant_id BLOB NOT NULL REFERENCES tenants ON DELETE CASCADE,
    is_primary BOOLEAN NOT NULL
);

CREATE INDEX domains_tenant_id_idx ON domains (tenant_id);
