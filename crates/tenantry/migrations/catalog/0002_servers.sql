-- Database servers tenants can be placed on. A tenant without a server lives in the catalog's
-- own database.
CREATE TABLE tenantry.servers (
    name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]{0,39}$'),
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE tenantry.tenants ADD COLUMN server text REFERENCES tenantry.servers (name);
CREATE INDEX tenants_server ON tenantry.tenants (server);

DROP TRIGGER tenants_changed ON tenantry.tenants;
CREATE TRIGGER tenants_changed
    AFTER INSERT OR DELETE OR UPDATE OF slug, name, schema_name, isolation, status, settings, server
    ON tenantry.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry.announce_catalog_change();
CREATE TRIGGER servers_changed
    AFTER INSERT OR UPDATE OR DELETE ON tenantry.servers
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry.announce_catalog_change();
