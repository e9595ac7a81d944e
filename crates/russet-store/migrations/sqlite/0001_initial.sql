-- Russet schema, version 1 (SQLite). Keep in step with migrations/postgres/0001_initial.sql:
-- the same tables, columns and constraints; only the type names differ.
-- Times are Unix epoch milliseconds (UTC). Secrets are AEAD ciphertexts (see src/crypto.rs).

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE admin_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    key_hash    TEXT    NOT NULL UNIQUE,
    key_prefix  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    actor_key_id BIGINT,
    action      TEXT    NOT NULL,
    target_type TEXT    NOT NULL,
    target_id   TEXT,
    summary     TEXT    NOT NULL,
    details     TEXT    NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id);

CREATE TABLE ade_tokens (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL,
    name_key          TEXT    NOT NULL UNIQUE,
    apple_id          TEXT,
    certificate_pem   TEXT    NOT NULL,
    private_key_enc   BLOB    NOT NULL,
    credentials_enc   BLOB,
    consumer_key_hash TEXT    UNIQUE,
    expires_at        BIGINT,
    created_at        BIGINT  NOT NULL,
    activated_at      BIGINT,
    renewed_at        BIGINT,
    updated_at        BIGINT  NOT NULL,
    version           BIGINT  NOT NULL DEFAULT 1
);

-- Devices ABM has assigned to a token's MDM server, and the ADE enrollment profiles defined
-- under a token. Device sync and profiles fill them (later migrations add their columns);
-- they exist now because a token cannot be deleted while either refers to it.
CREATE TABLE ade_devices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id      BIGINT  NOT NULL REFERENCES ade_tokens (id) ON DELETE RESTRICT,
    serial_number TEXT    NOT NULL UNIQUE,
    created_at    BIGINT  NOT NULL
);
CREATE INDEX ade_devices_token ON ade_devices (token_id);

CREATE TABLE ade_profiles (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id    BIGINT  NOT NULL REFERENCES ade_tokens (id) ON DELETE RESTRICT,
    name        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX ade_profiles_token ON ade_profiles (token_id);
