-- Custom domains a tenant has asked for and not yet shown it owns: each waits, unrouted,
-- for a DNS TXT record `_tenantry.<domain>` holding its token. Several tenants may claim one
-- name (a claim proves nothing); the first to verify it moves it into `domains`.
CREATE TABLE tenantry.domain_claims (
    tenant_id uuid NOT NULL REFERENCES tenantry.tenants ON DELETE CASCADE,
    domain text NOT NULL,
    token text NOT NULL,
    created_at timestamptz NOT NULL,
    checks integer NOT NULL DEFAULT 0,
    -- Unix seconds: when the background check next looks at it.
    next_check_at bigint NOT NULL,
    last_checked_at timestamptz,
    last_error text,
    PRIMARY KEY (tenant_id, domain)
);
CREATE INDEX domain_claims_due_idx ON tenantry.domain_claims (next_check_at);
