-- Apps and Books (VPP) location tokens and credential health (issue 7).
--
-- A VPP token is keyed by Apple's location id (`location_uid`, the `uId` of /client/config):
-- a new file for a location Russet already has renews that row in place, so its id, its
-- licences and anything that refers to it stay. The whole .vpptoken file is the bearer
-- credential and is kept only sealed (`token_enc`); `token_sha256` tells an upload of the
-- same file again. `mdm_id`/`mdm_name` are the owning MDM Apple reported at the last check.
-- `apple_state` is what Apple last said of the token: ok, expired (9621), invalid (9622) or
-- revoked (9625). Keep in step with the other backend's file.
CREATE TABLE vpp_tokens (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT    NOT NULL,
    name_key           TEXT    NOT NULL UNIQUE,
    apple_id           TEXT,
    account_type       TEXT    NOT NULL,
    location_uid       TEXT    NOT NULL UNIQUE,
    location_name      TEXT    NOT NULL,
    org_name           TEXT    NOT NULL,
    country            TEXT,
    default_platform   TEXT,
    website_url        TEXT,
    token_enc          BLOB    NOT NULL,
    token_sha256       TEXT    NOT NULL,
    expires_at         BIGINT  NOT NULL,
    mdm_id             TEXT,
    mdm_name           TEXT,
    claimed_at         BIGINT,
    apple_state        TEXT    NOT NULL DEFAULT 'ok',
    apple_state_message TEXT,
    apple_checked_at   BIGINT,
    last_sync_at       BIGINT,
    last_sync_status   TEXT,
    last_sync_error    TEXT,
    last_success_at    BIGINT,
    next_sync_at       BIGINT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    renewed_at         BIGINT,
    version            BIGINT  NOT NULL DEFAULT 1
);

-- An app or book appears once, however many tokens hold licences for it.
CREATE TABLE vpp_assets (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    adam_id            TEXT    NOT NULL UNIQUE,
    product_type       TEXT    NOT NULL,
    platforms          TEXT    NOT NULL DEFAULT '',
    first_seen_at      BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);

-- The licences one token holds for one asset at one pricing (STDQ or PLUS).
CREATE TABLE vpp_licences (
    token_id           BIGINT  NOT NULL REFERENCES vpp_tokens (id) ON DELETE CASCADE,
    asset_id           BIGINT  NOT NULL REFERENCES vpp_assets (id) ON DELETE CASCADE,
    pricing_param      TEXT    NOT NULL,
    total_count        BIGINT  NOT NULL,
    assigned_count     BIGINT  NOT NULL,
    available_count    BIGINT  NOT NULL,
    retired_count      BIGINT  NOT NULL,
    device_assignable  BIGINT  NOT NULL,
    revocable          BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    PRIMARY KEY (token_id, asset_id, pricing_param)
);
CREATE INDEX vpp_licences_asset ON vpp_licences (asset_id);

-- The health status last recorded for each credential ("ade_token:3", "push_certificate",
-- "vpp_token:5"): a notification is sent when it changes, once, by the process whose
-- conditional update wins.
CREATE TABLE credential_states (
    credential_key     TEXT    NOT NULL PRIMARY KEY,
    kind               TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    severity           TEXT    NOT NULL,
    expires_at         BIGINT,
    changed_at         BIGINT  NOT NULL,
    checked_at         BIGINT  NOT NULL
);

-- Webhook notifications, written in the transaction that records the change and delivered
-- (with retries) by whichever process claims them.
CREATE TABLE notification_deliveries (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id           TEXT    NOT NULL UNIQUE,
    event              TEXT    NOT NULL,
    credential_key     TEXT    NOT NULL,
    payload            TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    attempts           BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at    BIGINT  NOT NULL,
    claimed_until      BIGINT,
    last_error         TEXT,
    last_status_code   BIGINT,
    delivered_at       BIGINT,
    created_at         BIGINT  NOT NULL
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (status, next_attempt_at);
