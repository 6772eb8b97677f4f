-- Database mode: a tenant with a database of its own, in which its tables live in schema
-- `tenant`. Its database name is stored, not derived, so renaming the slug renames nothing.
-- Database names are global to a server, so they end in part of the tenant's id.
ALTER TABLE tenantry.tenants ADD COLUMN database_name text
    CHECK (database_name ~ '^tenant_[a-z0-9_]{1,56}$');
ALTER TABLE tenantry.tenants DROP CONSTRAINT tenants_isolation_check;
ALTER TABLE tenantry.tenants ADD CONSTRAINT tenants_isolation_check
    CHECK (isolation IN ('schema', 'database'));
ALTER TABLE tenantry.tenants ADD CONSTRAINT tenants_database_iff_database_mode
    CHECK ((isolation = 'database') = (database_name IS NOT NULL));

-- Schema names are unique per database, not overall.
ALTER TABLE tenantry.tenants DROP CONSTRAINT tenants_schema_name_key;
CREATE UNIQUE INDEX tenants_placement
    ON tenantry.tenants (coalesce(server, ''), coalesce(database_name, ''), schema_name);
CREATE UNIQUE INDEX tenants_database
    ON tenantry.tenants (coalesce(server, ''), database_name) WHERE database_name IS NOT NULL;

DROP TRIGGER tenants_changed ON tenantry.tenants;
CREATE TRIGGER tenants_changed
    AFTER INSERT OR DELETE OR UPDATE OF
        slug, name, schema_name, isolation, status, settings, server, database_name
    ON tenantry.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry.announce_catalog_change();
