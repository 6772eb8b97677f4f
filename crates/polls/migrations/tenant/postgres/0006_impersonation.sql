-- Impersonation (tenantry::web): a login link an operator issued, and the session it starts,
-- name that operator, so that the tenant's pages show who is looking.
ALTER TABLE web_login_links ADD COLUMN impersonator varchar(64);
ALTER TABLE web_sessions ADD COLUMN impersonator varchar(64);
