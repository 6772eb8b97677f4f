-- Dedicated tenants: a database (and role, and app server) of their own.
ALTER TABLE tenantry.tenants DROP CONSTRAINT tenants_isolation_check;
ALTER TABLE tenantry.tenants ADD CONSTRAINT tenants_isolation_check
    CHECK (isolation IN ('schema', 'database', 'shared', 'dedicated'));
ALTER TABLE tenantry.tenants DROP CONSTRAINT tenants_database_iff_database_mode;
ALTER TABLE tenantry.tenants ADD CONSTRAINT tenants_database_iff_own_database
    CHECK ((isolation IN ('database', 'dedicated')) = (database_name IS NOT NULL));

-- The dedicated tenants' servers each supervising process runs, by machine.
CREATE TABLE tenantry.dedicated_servers (
    tenant_id uuid NOT NULL REFERENCES tenantry.tenants ON DELETE CASCADE,
    host text NOT NULL,
    pid bigint,
    port integer,
    started_at timestamptz,
    restarts integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, host)
);
