-- Automated Device Enrollment: which ABM device, profile and user an MDM enrollment came
-- from (bound by the SCEP challenge Russet put in the profile it served after checking the
-- device's signed MachineInfo), and the await-configuration state of Setup Assistant.
ALTER TABLE mdm_enrollments ADD COLUMN ade_serial TEXT;
ALTER TABLE mdm_enrollments ADD COLUMN ade_token_id BIGINT;
ALTER TABLE mdm_enrollments ADD COLUMN ade_profile_id BIGINT;
ALTER TABLE mdm_enrollments ADD COLUMN ade_user TEXT;
ALTER TABLE mdm_enrollments ADD COLUMN supervised BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mdm_enrollments ADD COLUMN locked_enrollment BIGINT NOT NULL DEFAULT 0;
ALTER TABLE mdm_enrollments ADD COLUMN configured_at BIGINT;
ALTER TABLE mdm_enrollments ADD COLUMN configured_by TEXT;
CREATE INDEX mdm_enrollments_ade_serial ON mdm_enrollments (ade_serial);

-- A sign-in page served to a device in Setup Assistant (profile with user affinity): the
-- form carries the session's secret, whose SHA-256 is kept here with the device it was
-- served to, so the device need not send its MachineInfo again.
CREATE TABLE ade_sign_ins (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_hash   TEXT    NOT NULL UNIQUE,
    profile_id    BIGINT  NOT NULL,
    serial        TEXT    NOT NULL,
    udid          TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    attempts      BIGINT  NOT NULL DEFAULT 0,
    signed_in_at  BIGINT,
    username      TEXT
);
CREATE INDEX ade_sign_ins_expiry ON ade_sign_ins (expires_at);
