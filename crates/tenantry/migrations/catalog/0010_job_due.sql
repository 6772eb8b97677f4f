-- Where background work waits: each tenant's jobs and schedules are in its own data
-- (`tenantry_jobs`, `tenantry_schedules`), so workers read this table to know which tenants
-- to look at, and from when. A row is a hint: a worker that finds nothing there moves it on
-- or deletes it, unless an enqueue raised `version` meanwhile.
CREATE TABLE tenantry.job_due (
    tenant_id uuid PRIMARY KEY REFERENCES tenantry.tenants ON DELETE CASCADE,
    -- Unix milliseconds: the earliest a job may be ready, a schedule fire or a lease end.
    due_at bigint NOT NULL,
    version bigint NOT NULL DEFAULT 1
);
CREATE INDEX job_due_at_idx ON tenantry.job_due (due_at);
