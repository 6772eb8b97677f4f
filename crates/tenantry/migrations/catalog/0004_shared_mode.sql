-- Shared mode: tenants whose rows live side by side in schema `tenantry_shared` of the
-- catalog's database, kept apart by Row-Level Security on their `tenant_id`. They all share
-- one schema name, so the placement is unique only among tenants of the other modes.
ALTER TABLE tenantry.tenants DROP CONSTRAINT tenants_isolation_check;
ALTER TABLE tenantry.tenants ADD CONSTRAINT tenants_isolation_check
    CHECK (isolation IN ('schema', 'database', 'shared'));
ALTER TABLE tenantry.tenants ADD CONSTRAINT tenants_shared_in_catalog_database
    CHECK (isolation <> 'shared' OR (server IS NULL AND schema_name = 'tenantry_shared'));
DROP INDEX tenantry.tenants_placement;
CREATE UNIQUE INDEX tenants_placement
    ON tenantry.tenants (coalesce(server, ''), coalesce(database_name, ''), schema_name)
    WHERE isolation <> 'shared';

-- While a tenant is being moved to another placement it serves reads and refuses writes.
ALTER TABLE tenantry.tenants ADD COLUMN moving boolean NOT NULL DEFAULT false;

DROP TRIGGER tenants_changed ON tenantry.tenants;
CREATE TRIGGER tenants_changed
    AFTER INSERT OR DELETE OR UPDATE OF
        slug, name, schema_name, isolation, status, settings, server, database_name, moving
    ON tenantry.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry.announce_catalog_change();
