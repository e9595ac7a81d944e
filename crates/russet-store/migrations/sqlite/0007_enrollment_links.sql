-- Enrollment links (issue 5): for devices outside ABM, a URL serving an enrollment profile.
-- Only the SHA-256 of the link's secret is stored. A single-use link is spent once a device
-- got its identity certificate through it. Keep in step with the other backend's file.
CREATE TABLE enrollment_links (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    token_hash    TEXT    NOT NULL UNIQUE,
    single_use    BIGINT  NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL,
    created_by    TEXT    NOT NULL,
    expires_at    BIGINT  NOT NULL,
    revoked_at    BIGINT,
    downloads     BIGINT  NOT NULL DEFAULT 0,
    last_download_at BIGINT,
    enrollments   BIGINT  NOT NULL DEFAULT 0,
    used_at       BIGINT
);
