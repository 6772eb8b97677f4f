-- The polls app's tables in a SQLite tenant's own file: the PostgreSQL set's tables in
-- SQLite's types. AUTOINCREMENT keeps ids from being reused after a delete, as on PostgreSQL.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 150),
    email TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    is_superuser BOOLEAN NOT NULL DEFAULT FALSE,
    date_joined TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- One API token per user, sent as `Authorization: Token <key>`.
CREATE TABLE tokens (
    key TEXT PRIMARY KEY CHECK (length(key) = 40),
    user_id INTEGER NOT NULL UNIQUE REFERENCES users ON DELETE CASCADE,
    created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE polls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    question TEXT NOT NULL CHECK (length(question) <= 100),
    created_by INTEGER NOT NULL REFERENCES users,
    pub_date TEXT NOT NULL
);

CREATE TABLE choices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    poll_id INTEGER NOT NULL REFERENCES polls ON DELETE CASCADE,
    choice_text TEXT NOT NULL CHECK (length(choice_text) <= 100)
);

CREATE INDEX choices_poll_id_idx ON choices (poll_id);

-- A user votes at most once per poll; the unique index also serves lookups by poll_id.
CREATE TABLE votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    choice_id INTEGER NOT NULL REFERENCES choices ON DELETE CASCADE,
    poll_id INTEGER NOT NULL REFERENCES polls ON DELETE CASCADE,
    voted_by INTEGER NOT NULL REFERENCES users,
    UNIQUE (poll_id, voted_by)
);

CREATE INDEX votes_choice_id_idx ON votes (choice_id);
