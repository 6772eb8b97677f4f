-- The PostgreSQL set's 0006: the operator a login link and its session impersonate for.
ALTER TABLE web_login_links ADD COLUMN impersonator TEXT;
ALTER TABLE web_sessions ADD COLUMN impersonator TEXT;
