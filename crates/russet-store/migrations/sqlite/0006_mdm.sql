-- The MDM core (issue 5): Russet's certificate authority, SCEP challenges, issued device
-- identities, enrollments (device and user channels), commands and their per-enrollment
-- queue. Keep in step with the other backend's 0006_mdm.sql (same tables and columns).

-- Russet's certificate authority for device identities (SCEP): one row, key sealed.
CREATE TABLE mdm_ca (
    id               BIGINT  PRIMARY KEY NOT NULL,
    certificate_pem  TEXT    NOT NULL,
    private_key_enc  BLOB   NOT NULL,
    created_at       BIGINT  NOT NULL,
    CHECK (id = 1)
);

-- One-time SCEP challenges: only their SHA-256 is stored. A challenge is bound to what
-- asked for it (an enrollment link, an ADE device) and used once.
CREATE TABLE scep_challenges (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    challenge_hash TEXT   NOT NULL UNIQUE,
    purpose       TEXT    NOT NULL,
    reference     TEXT,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    used_at       BIGINT,
    used_by_cert  TEXT
);
CREATE INDEX scep_challenges_expiry ON scep_challenges (expires_at);

-- Every certificate the CA issued. enrollment_id is set when a device first authenticates
-- with it (the pin); a renewed certificate names the one it replaced.
CREATE TABLE mdm_certificates (
    sha256          TEXT    PRIMARY KEY NOT NULL,
    serial          TEXT    NOT NULL UNIQUE,
    subject         TEXT    NOT NULL,
    not_before      BIGINT  NOT NULL,
    not_after       BIGINT  NOT NULL,
    issued_at       BIGINT  NOT NULL,
    challenge_id    BIGINT,
    renewed_from    TEXT,
    enrollment_id   TEXT,
    pinned_at       BIGINT
);
CREATE INDEX mdm_certificates_enrollment ON mdm_certificates (enrollment_id);

-- Enrollments: a device channel (id = UDID, or EnrollmentID for User Enrollment) and its
-- user channels (id = "<device id>:<user>", device_id = the device channel's id).
CREATE TABLE mdm_enrollments (
    id                     TEXT    PRIMARY KEY NOT NULL,
    device_id              TEXT    NOT NULL,
    kind                   TEXT    NOT NULL,
    udid                   TEXT,
    enrollment_id          TEXT,
    user_id                TEXT,
    user_short_name        TEXT,
    user_long_name         TEXT,
    serial_number          TEXT,
    device_name            TEXT,
    model                  TEXT,
    model_name             TEXT,
    product_name           TEXT,
    os_version             TEXT,
    build_version          TEXT,
    imei                   TEXT,
    meid                   TEXT,
    topic                  TEXT,
    push_token             TEXT,
    push_magic             TEXT,
    unlock_token_enc       BLOB,
    bootstrap_token_enc    BLOB,
    awaiting_configuration BIGINT  NOT NULL DEFAULT 0,
    enabled                BIGINT  NOT NULL DEFAULT 0,
    token_update_count     BIGINT  NOT NULL DEFAULT 0,
    inventory              TEXT,
    inventory_at           BIGINT,
    authenticated_at       BIGINT,
    enrolled_at            BIGINT,
    token_updated_at       BIGINT,
    checked_out_at         BIGINT,
    last_seen_at           BIGINT,
    last_push_at           BIGINT,
    push_failed_at         BIGINT,
    push_error             TEXT,
    created_at             BIGINT  NOT NULL,
    updated_at             BIGINT  NOT NULL
);
CREATE INDEX mdm_enrollments_device ON mdm_enrollments (device_id);
CREATE INDEX mdm_enrollments_serial ON mdm_enrollments (serial_number);

-- Commands as queued: the raw plist Russet sends. id orders queues (older first).
CREATE TABLE mdm_commands (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid          TEXT    NOT NULL UNIQUE,
    request_type  TEXT    NOT NULL,
    body          BLOB   NOT NULL,
    created_at    BIGINT  NOT NULL,
    created_by    TEXT    NOT NULL,
    target_count  BIGINT  NOT NULL
);

-- The queue: one row per command and enrollment. status is NULL while never answered,
-- then the device's last status (NotNow, Acknowledged, Error, CommandFormatError), or
-- 'Cancelled' when a new Authenticate cleared the queue. active = 0 once closed.
CREATE TABLE mdm_queue (
    enrollment_id  TEXT    NOT NULL,
    command_uuid   TEXT    NOT NULL,
    seq            BIGINT  NOT NULL,  -- the command's id
    status         TEXT,
    active         BIGINT  NOT NULL DEFAULT 1,
    queued_at      BIGINT  NOT NULL,
    sent_at        BIGINT,
    not_now_count  BIGINT  NOT NULL DEFAULT 0,
    not_now_at     BIGINT,
    result         BLOB,
    error_chain    TEXT,
    answered_at    BIGINT,
    PRIMARY KEY (enrollment_id, command_uuid)
);
CREATE INDEX mdm_queue_next ON mdm_queue (enrollment_id, active, seq);
CREATE INDEX mdm_queue_command ON mdm_queue (command_uuid);
