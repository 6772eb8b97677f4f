-- The web side: staff users log into the tenant's admin; login sessions and the tenant's
-- logo are kept with the tenant's data (tenantry::web reads and writes these two tables).

ALTER TABLE users ADD COLUMN is_staff boolean NOT NULL DEFAULT false;

-- `id` is the SHA-256 of the cookie's token, so the table never holds a usable token.
CREATE TABLE web_sessions (
    tenant_id uuid NOT NULL DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
    id varchar(64) NOT NULL,
    user_id bigint NOT NULL,
    csrf varchar(64) NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX web_sessions_user_idx ON web_sessions (tenant_id, user_id);

CREATE TABLE branding_files (
    tenant_id uuid NOT NULL DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
    name varchar(32) NOT NULL,
    content_type varchar(32) NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

ALTER TABLE web_sessions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON web_sessions
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE branding_files ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON branding_files
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
