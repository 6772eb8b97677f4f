-- Pending tenants: provisioned ahead of signups, invisible until one takes them.
ALTER TABLE tenantry.tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenantry.tenants ADD CONSTRAINT tenants_status_check
    CHECK (status IN ('active', 'suspended', 'pending'));
CREATE INDEX tenants_pending_idx ON tenantry.tenants (isolation, created_at)
    WHERE status = 'pending';
