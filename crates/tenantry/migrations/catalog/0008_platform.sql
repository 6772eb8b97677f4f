-- The platform around tenants: pending tenants (built ahead of signups, invisible until one
-- takes them), deleted ones (kept for a grace period, then purged), the operators of the
-- console, their sessions, and the audit log of every change made through the console or
-- the platform API.
ALTER TABLE tenantry.tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenantry.tenants ADD CONSTRAINT tenants_status_check
    CHECK (status IN ('active', 'suspended', 'pending', 'deleted'));
ALTER TABLE tenantry.tenants ADD COLUMN deleted_at timestamptz;
CREATE INDEX tenants_pending_idx ON tenantry.tenants (isolation, created_at)
    WHERE status = 'pending';

CREATE TABLE tenantry.operators (
    name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9._-]{0,39}$'),
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A session's id is the SHA-256 of its cookie's token.
CREATE TABLE tenantry.operator_sessions (
    id text PRIMARY KEY,
    operator text NOT NULL REFERENCES tenantry.operators ON DELETE CASCADE,
    csrf text NOT NULL,
    expires_at bigint NOT NULL
);

CREATE TABLE tenantry.audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    target text,
    outcome text NOT NULL,
    detail text
);
CREATE INDEX audit_log_at_idx ON tenantry.audit_log (at);
CREATE INDEX audit_log_target_idx ON tenantry.audit_log (target, at);
