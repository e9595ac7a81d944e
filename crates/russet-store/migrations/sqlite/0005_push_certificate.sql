-- The MDM push certificate (issue 5): one per Russet. Keep in step with the other backend's
-- 0005_push_certificate.sql (same columns).
-- The active certificate with its sealed key, and the key and CSR made for the next upload
-- (first issue or renewal) until Apple's certificate for them arrives. `version` changes on
-- every write: every process sharing the database reloads its APNs client when it moves.
CREATE TABLE push_certificate (
    id                 BIGINT  PRIMARY KEY NOT NULL,
    topic              TEXT,
    certificate_pem    TEXT,
    private_key_enc    BLOB,
    serial             TEXT,
    subject            TEXT,
    issuer             TEXT,
    not_before         BIGINT,
    not_after          BIGINT,
    apple_id           TEXT,
    uploaded_at        BIGINT,
    renewed_at         BIGINT,
    pending_key_enc    BLOB,
    pending_csr_pem    TEXT,
    pending_created_at BIGINT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    version            BIGINT  NOT NULL DEFAULT 1,
    CHECK (id = 1)
);
