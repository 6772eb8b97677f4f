-- Every tenant table carries its tenant's id, so the same tables serve every layout: one
-- tenant per schema or database, or all shared-mode tenants in one schema. The id comes from
-- the transaction's `app.tenant_id`, so the app never writes it; existing rows get the id of
-- the tenant being migrated. It leads every key and index, and Row-Level Security (enabled,
-- forced, with a policy) shows and accepts only the current tenant's rows: with no tenant
-- set, nothing at all.

ALTER TABLE votes
    DROP CONSTRAINT votes_choice_id_fkey,
    DROP CONSTRAINT votes_poll_id_fkey,
    DROP CONSTRAINT votes_voted_by_fkey,
    DROP CONSTRAINT votes_poll_id_voted_by_key,
    DROP CONSTRAINT votes_pkey;
ALTER TABLE choices DROP CONSTRAINT choices_poll_id_fkey, DROP CONSTRAINT choices_pkey;
ALTER TABLE polls DROP CONSTRAINT polls_created_by_fkey, DROP CONSTRAINT polls_pkey;
ALTER TABLE tokens
    DROP CONSTRAINT tokens_user_id_fkey,
    DROP CONSTRAINT tokens_user_id_key,
    DROP CONSTRAINT tokens_pkey;
ALTER TABLE users DROP CONSTRAINT users_username_key, DROP CONSTRAINT users_pkey;
DROP INDEX choices_poll_id_idx;
DROP INDEX votes_choice_id_idx;

ALTER TABLE users
    ADD COLUMN tenant_id uuid NOT NULL
        DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
    ADD PRIMARY KEY (tenant_id, id),
    ADD UNIQUE (tenant_id, username);

ALTER TABLE tokens
    ADD COLUMN tenant_id uuid NOT NULL
        DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
    ADD PRIMARY KEY (tenant_id, key),
    ADD UNIQUE (tenant_id, user_id),
    ADD FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE;

ALTER TABLE polls
    ADD COLUMN tenant_id uuid NOT NULL
        DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
    ADD PRIMARY KEY (tenant_id, id),
    ADD FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id);

ALTER TABLE choices
    ADD COLUMN tenant_id uuid NOT NULL
        DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
    ADD PRIMARY KEY (tenant_id, id),
    ADD FOREIGN KEY (tenant_id, poll_id) REFERENCES polls (tenant_id, id) ON DELETE CASCADE;
CREATE INDEX choices_poll_id_idx ON choices (tenant_id, poll_id);

-- A user votes at most once per poll of their tenant.
ALTER TABLE votes
    ADD COLUMN tenant_id uuid NOT NULL
        DEFAULT nullif(current_setting('app.tenant_id', true), '')::uuid,
    ADD PRIMARY KEY (tenant_id, id),
    ADD UNIQUE (tenant_id, poll_id, voted_by),
    ADD FOREIGN KEY (tenant_id, choice_id) REFERENCES choices (tenant_id, id) ON DELETE CASCADE,
    ADD FOREIGN KEY (tenant_id, poll_id) REFERENCES polls (tenant_id, id) ON DELETE CASCADE,
    ADD FOREIGN KEY (tenant_id, voted_by) REFERENCES users (tenant_id, id);
CREATE INDEX votes_choice_id_idx ON votes (tenant_id, choice_id);

ALTER TABLE users ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE tokens ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tokens
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE polls ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON polls
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE choices ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON choices
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
ALTER TABLE votes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON votes
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
