-- The polls app's tables, created in each tenant's schema (search_path is set by the migrator).

CREATE TABLE users (
    id bigserial PRIMARY KEY,
    username text NOT NULL UNIQUE CHECK (char_length(username) BETWEEN 1 AND 150),
    email text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    is_superuser boolean NOT NULL DEFAULT false,
    date_joined timestamptz NOT NULL DEFAULT now()
);

-- One API token per user, sent as `Authorization: Token <key>`.
CREATE TABLE tokens (
    key char(40) PRIMARY KEY,
    user_id bigint NOT NULL UNIQUE REFERENCES users ON DELETE CASCADE,
    created timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE polls (
    id bigserial PRIMARY KEY,
    question varchar(100) NOT NULL,
    created_by bigint NOT NULL REFERENCES users,
    pub_date timestamptz NOT NULL
);

CREATE TABLE choices (
    id bigserial PRIMARY KEY,
    poll_id bigint NOT NULL REFERENCES polls ON DELETE CASCADE,
    choice_text varchar(100) NOT NULL
);

CREATE INDEX choices_poll_id_idx ON choices (poll_id);

-- A user votes at most once per poll; the unique index also serves lookups by poll_id.
CREATE TABLE votes (
    id bigserial PRIMARY KEY,
    choice_id bigint NOT NULL REFERENCES choices ON DELETE CASCADE,
    poll_id bigint NOT NULL REFERENCES polls ON DELETE CASCADE,
    voted_by bigint NOT NULL REFERENCES users,
    UNIQUE (poll_id, voted_by)
);

CREATE INDEX votes_choice_id_idx ON votes (choice_id);
