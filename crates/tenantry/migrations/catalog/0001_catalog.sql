-- The tenant catalog. Every change to it is announced on channel `tenantry_catalog` so that
-- servers drop their cached host lookups within a moment.
CREATE TABLE tenantry.tenants (
    id uuid PRIMARY KEY,
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9-]{0,39}$'),
    name text NOT NULL,
    schema_name text NOT NULL UNIQUE,
    isolation text NOT NULL DEFAULT 'schema' CHECK (isolation IN ('schema')),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    settings jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    migration_version bigint,
    migration_fingerprint text,
    migrated_at timestamptz
);

CREATE TABLE tenantry.domains (
    domain text PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenantry.tenants (id) ON DELETE CASCADE,
    is_primary boolean NOT NULL DEFAULT false
);
CREATE INDEX domains_tenant_id ON tenantry.domains (tenant_id);
CREATE UNIQUE INDEX domains_one_primary ON tenantry.domains (tenant_id) WHERE is_primary;

CREATE FUNCTION tenantry.announce_catalog_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenantry_catalog', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

-- Migration bookkeeping columns change on every `migrate`; they are not part of routing.
CREATE TRIGGER tenants_changed
    AFTER INSERT OR DELETE OR UPDATE OF slug, name, schema_name, isolation, status, settings
    ON tenantry.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry.announce_catalog_change();
CREATE TRIGGER domains_changed
    AFTER INSERT OR UPDATE OR DELETE ON tenantry.domains
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry.announce_catalog_change();
