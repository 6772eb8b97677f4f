-- Which tenants have background work, and from when (see the PostgreSQL catalog's
-- 0010_job_due.sql).
CREATE TABLE job_due (
    tenant_id BLOB PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    due_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX job_due_at_idx ON job_due (due_at);
