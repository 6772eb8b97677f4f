-- Custom domains a tenant has asked for and not yet shown it owns (see the PostgreSQL
-- catalog's 0009_domain_claims.sql).
CREATE TABLE domain_claims (
    tenant_id BLOB NOT NULL REFERENCES tenants ON DELETE CASCADE,
    domain TEXT NOT NULL,
    token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    checks INTEGER NOT NULL DEFAULT 0,
    next_check_at INTEGER NOT NULL,
    last_checked_at TEXT,
    last_error TEXT,
    PRIMARY KEY (tenant_id, domain)
);
CREATE INDEX domain_claims_due_idx ON domain_claims (next_check_at);
