-- The PostgreSQL set's 0005 in SQLite's types: one-time login links, by the SHA-256 of
-- their token.
CREATE TABLE web_login_links (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
