-- Servers that reach the catalog through a transaction pooler cannot LISTEN: they poll this
-- version, which every committed change of what routing reads raises.
CREATE TABLE tenantry.catalog_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL DEFAULT 0
);
INSERT INTO tenantry.catalog_version DEFAULT VALUES;

CREATE FUNCTION tenantry.raise_catalog_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tenantry.catalog_version SET version = version + 1;
    RETURN NULL;
END
$$;

-- Deferred to the commit, so that the row is locked only while a change commits and a
-- poller never sees the new version before the change itself.
CREATE CONSTRAINT TRIGGER tenants_version
    AFTER INSERT OR DELETE OR UPDATE OF
        slug, name, schema_name, isolation, status, settings, server, database_name, moving
    ON tenantry.tenants DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION tenantry.raise_catalog_version();
CREATE CONSTRAINT TRIGGER domains_version
    AFTER INSERT OR UPDATE OR DELETE ON tenantry.domains DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION tenantry.raise_catalog_version();
CREATE CONSTRAINT TRIGGER servers_version
    AFTER INSERT OR UPDATE OR DELETE ON tenantry.servers DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION tenantry.raise_catalog_version();
