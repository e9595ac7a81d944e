-- End users (issue 6): the people who sign in during Automated Device Enrollment (user
-- affinity). Local accounts for now; `source` leaves room for OIDC or SAML accounts, which
-- will have no password hash. `username_key` is the username lower-cased, so names are unique
-- ignoring case. `password_hash` is an Argon2id PHC string, never the password. Failed
-- sign-ins count up in one UPDATE; `locked_until` (epoch ms) is set when they reach the
-- limit. Keep in step with the other backend's file.
CREATE TABLE users (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    username         TEXT    NOT NULL,
    username_key     TEXT    NOT NULL UNIQUE,
    display_name     TEXT    NOT NULL,
    email            TEXT,
    source           TEXT    NOT NULL DEFAULT 'local',
    password_hash    TEXT,
    failed_attempts  BIGINT  NOT NULL DEFAULT 0,
    locked_until     BIGINT,
    disabled         BIGINT  NOT NULL DEFAULT 0,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    last_sign_in_at  BIGINT,
    version          BIGINT  NOT NULL DEFAULT 1
);
