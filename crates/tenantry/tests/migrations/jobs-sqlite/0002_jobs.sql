-- Background jobs and schedules in SQLite's types (see the PostgreSQL set's 0002_jobs.sql).
CREATE TABLE tenantry_jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'done', 'dead', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    locked_until INTEGER,
    locked_by TEXT,
    idempotency_key TEXT UNIQUE,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX tenantry_jobs_due_idx ON tenantry_jobs (state, run_at);

CREATE TABLE tenantry_schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    next_at INTEGER NOT NULL,
    offset_ms INTEGER NOT NULL
);
