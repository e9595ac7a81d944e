-- ABM connection (issue 4): account details on tokens, sync state, leases, jobs, device
-- records from Apple's device assignment API, ADE enrollment profiles and assignments.
-- Keep in step with postgres/0002_abm_connection.sql (same tables and columns).
-- Flags are 0/1 integers on both databases.

ALTER TABLE ade_tokens ADD COLUMN abm_server_name TEXT;
ALTER TABLE ade_tokens ADD COLUMN abm_server_uuid TEXT;
ALTER TABLE ade_tokens ADD COLUMN abm_admin_id TEXT;
ALTER TABLE ade_tokens ADD COLUMN org_name TEXT;
ALTER TABLE ade_tokens ADD COLUMN org_email TEXT;
ALTER TABLE ade_tokens ADD COLUMN org_phone TEXT;
ALTER TABLE ade_tokens ADD COLUMN org_type TEXT;
ALTER TABLE ade_tokens ADD COLUMN org_id TEXT;
ALTER TABLE ade_tokens ADD COLUMN account_checked_at BIGINT;
-- Set when Apple answers T_C_NOT_SIGNED; cleared by the next successful call.
ALTER TABLE ade_tokens ADD COLUMN terms_not_signed_at BIGINT;
ALTER TABLE ade_tokens ADD COLUMN default_profile_id BIGINT;

-- Sync state per token, apart from the token row so that a running sync never conflicts
-- with an administrator's change of the token.
CREATE TABLE ade_sync_state (
    token_id              BIGINT  PRIMARY KEY NOT NULL REFERENCES ade_tokens (id) ON DELETE CASCADE,
    cursor                TEXT,
    -- 'fetch' while a full fetch is under way (the cursor resumes it), 'sync' afterwards.
    phase                 TEXT,
    cursor_at             BIGINT,
    fetch_started_at      BIGINT,
    fetch_new_only        BIGINT  NOT NULL DEFAULT 0,
    last_sync_at          BIGINT,
    last_sync_status      TEXT,
    last_sync_error       TEXT,
    last_success_at       BIGINT,
    last_full_sync_at     BIGINT,
    last_manual_sync_at   BIGINT,
    next_sync_at          BIGINT,
    consecutive_failures  BIGINT  NOT NULL DEFAULT 0
);

-- Named leases: a background job runs in one process at a time.
CREATE TABLE leases (
    name        TEXT    PRIMARY KEY NOT NULL,
    owner       TEXT    NOT NULL,
    acquired_at BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);

-- Long-running work (syncs, assignments) with its progress.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT    NOT NULL,
    token_id     BIGINT  NOT NULL,
    profile_id   BIGINT,
    status       TEXT    NOT NULL,
    origin       TEXT    NOT NULL,
    mode         TEXT,
    requested_by TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    heartbeat_at BIGINT,
    progress     TEXT    NOT NULL,
    message      TEXT,
    error        TEXT
);
CREATE INDEX jobs_token ON jobs (token_id, id);

-- Apple's record of each device.
ALTER TABLE ade_devices ADD COLUMN model TEXT;
ALTER TABLE ade_devices ADD COLUMN description TEXT;
ALTER TABLE ade_devices ADD COLUMN color TEXT;
ALTER TABLE ade_devices ADD COLUMN asset_tag TEXT;
ALTER TABLE ade_devices ADD COLUMN os TEXT;
ALTER TABLE ade_devices ADD COLUMN device_family TEXT;
ALTER TABLE ade_devices ADD COLUMN abm_profile_uuid TEXT;
ALTER TABLE ade_devices ADD COLUMN abm_profile_status TEXT;
ALTER TABLE ade_devices ADD COLUMN abm_profile_assign_time BIGINT;
ALTER TABLE ade_devices ADD COLUMN abm_profile_push_time BIGINT;
ALTER TABLE ade_devices ADD COLUMN device_assigned_date BIGINT;
ALTER TABLE ade_devices ADD COLUMN device_assigned_by TEXT;
ALTER TABLE ade_devices ADD COLUMN op_type TEXT;
ALTER TABLE ade_devices ADD COLUMN op_date BIGINT;
ALTER TABLE ade_devices ADD COLUMN last_seen_at BIGINT;
ALTER TABLE ade_devices ADD COLUMN removed_at BIGINT;
ALTER TABLE ade_devices ADD COLUMN updated_at BIGINT;
-- Russet's side: the profile the device should have, and how assigning it went.
ALTER TABLE ade_devices ADD COLUMN profile_id BIGINT REFERENCES ade_profiles (id) ON DELETE RESTRICT;
ALTER TABLE ade_devices ADD COLUMN assign_state TEXT;
ALTER TABLE ade_devices ADD COLUMN assign_job_id BIGINT;
ALTER TABLE ade_devices ADD COLUMN assign_retry_at BIGINT;
ALTER TABLE ade_devices ADD COLUMN assign_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ade_devices ADD COLUMN assign_updated_at BIGINT;
-- Partial: newly synced devices have neither, so writing them costs no entry here.
CREATE INDEX ade_devices_profile ON ade_devices (profile_id) WHERE profile_id IS NOT NULL;
CREATE INDEX ade_devices_assign ON ade_devices (token_id, assign_state);
-- (token_id, assign_state) serves lookups by token too.
DROP INDEX ade_devices_token;
CREATE INDEX ade_devices_assign_job ON ade_devices (assign_job_id) WHERE assign_job_id IS NOT NULL;

-- Every assignment outcome, for a device's history.
CREATE TABLE ade_assignment_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    serial_number TEXT    NOT NULL,
    token_id      BIGINT  NOT NULL,
    profile_id    BIGINT,
    profile_name  TEXT,
    profile_uuid  TEXT,
    result        TEXT    NOT NULL,
    retry_at      BIGINT,
    job_id        BIGINT,
    at            BIGINT  NOT NULL
);
CREATE INDEX ade_assignment_events_serial ON ade_assignment_events (serial_number, id);

-- ADE enrollment profiles: settings as JSON, and the profile Apple holds for them.
ALTER TABLE ade_profiles ADD COLUMN name_key TEXT;
ALTER TABLE ade_profiles ADD COLUMN description TEXT;
ALTER TABLE ade_profiles ADD COLUMN settings TEXT;
ALTER TABLE ade_profiles ADD COLUMN enroll_key TEXT;
ALTER TABLE ade_profiles ADD COLUMN apple_profile_uuid TEXT;
ALTER TABLE ade_profiles ADD COLUMN defined_at BIGINT;
ALTER TABLE ade_profiles ADD COLUMN updated_at BIGINT;
ALTER TABLE ade_profiles ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX ade_profiles_name ON ade_profiles (token_id, name_key);
CREATE UNIQUE INDEX ade_profiles_enroll_key ON ade_profiles (enroll_key);
