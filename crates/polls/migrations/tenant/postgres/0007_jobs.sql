-- Background jobs and schedules, kept with the tenant's data so that they commit with its
-- writes and move, export and go with it (tenantry::jobs reads and writes both tables).
-- Times are Unix milliseconds.
CREATE TABLE tenantry_jobs (
    tenant_id uuid NOT NULL DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
    id bigserial,
    kind text NOT NULL,
    payload text NOT NULL,
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'done', 'dead', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    run_at bigint NOT NULL,
    locked_until bigint,
    locked_by text,
    idempotency_key text,
    last_error text,
    created_at bigint NOT NULL,
    finished_at bigint,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX tenantry_jobs_due_idx ON tenantry_jobs (tenant_id, state, run_at);

CREATE TABLE tenantry_schedules (
    tenant_id uuid NOT NULL DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
    name text NOT NULL,
    cron text NOT NULL,
    kind text NOT NULL,
    payload text NOT NULL,
    next_at bigint NOT NULL,
    -- The tenant's shift within the schedule's spread.
    offset_ms bigint NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

ALTER TABLE tenantry_jobs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenantry_jobs
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE tenantry_schedules ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenantry_schedules
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
