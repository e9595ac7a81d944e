//! Apps and Books (VPP) location tokens and the licences they hold (migration 0011).
//!
//! A token row is keyed by Apple's location id, so a renewal is an update of the same row:
//! its id, its licences and whatever refers to it stay. The bearer (the whole `.vpptoken`
//! file) is kept only sealed with the master key. Assets (apps and books) are one row per
//! Apple product id however many tokens hold licences for them; `vpp_licences` holds the
//! counts per token and pricing, replaced as a whole by each successful sync.

use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::audit::{NewAuditEntry, record};
use crate::{Store, StoreError, from_millis, opt_from_millis, to_millis};

/// A stored VPP token with its licence totals. No secrets.
#[derive(Clone, Debug, PartialEq)]
pub struct VppTokenRecord {
    pub id: i64,
    pub name: String,
    pub apple_id: Option<String>,
    /// `business` or `education`.
    pub account_type: String,
    /// Apple's location id (`uId`).
    pub location_uid: String,
    pub location_name: String,
    pub org_name: String,
    pub country: Option<String>,
    pub default_platform: Option<String>,
    pub website_url: Option<String>,
    /// SHA-256 (hex) of the token file's bearer text.
    pub token_sha256: String,
    pub expires_at: OffsetDateTime,
    /// The MDM Apple last reported as managing the location.
    pub mdm_id: Option<String>,
    pub mdm_name: Option<String>,
    /// When Russet last wrote its own `mdmInfo` for the location.
    pub claimed_at: Option<OffsetDateTime>,
    /// What Apple last said of the token: `ok`, `expired`, `invalid` or `revoked`.
    pub apple_state: String,
    pub apple_state_message: Option<String>,
    pub apple_checked_at: Option<OffsetDateTime>,
    pub last_sync_at: Option<OffsetDateTime>,
    /// `succeeded` or `failed`.
    pub last_sync_status: Option<String>,
    pub last_sync_error: Option<String>,
    pub last_success_at: Option<OffsetDateTime>,
    pub next_sync_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub renewed_at: Option<OffsetDateTime>,
    pub version: i64,
    /// Distinct assets with licences on this token.
    pub asset_count: i64,
    pub licences_total: i64,
    pub licences_assigned: i64,
}

/// What Apple's `/client/config` said of a location, as stored on its token.
#[derive(Clone, Debug, PartialEq)]
pub struct VppLocation {
    pub location_uid: String,
    pub location_name: String,
    pub org_name: String,
    pub country: Option<String>,
    pub default_platform: Option<String>,
    pub website_url: Option<String>,
    pub mdm_id: Option<String>,
    pub mdm_name: Option<String>,
}

/// A new token to store.
pub struct NewVppToken<'a> {
    pub name: &'a str,
    pub apple_id: Option<&'a str>,
    pub account_type: &'a str,
    pub location: &'a VppLocation,
    pub bearer: &'a SecretString,
    pub token_sha256: &'a str,
    pub expires_at: OffsetDateTime,
    /// Set when Russet wrote its `mdmInfo` while uploading.
    pub claimed_at: Option<OffsetDateTime>,
    pub now: OffsetDateTime,
    /// The first automatic sync.
    pub next_sync_at: OffsetDateTime,
}

/// A new file for a location the token already holds.
pub struct VppRenewal<'a> {
    pub apple_id: Option<&'a str>,
    pub location: &'a VppLocation,
    pub bearer: &'a SecretString,
    pub token_sha256: &'a str,
    pub expires_at: OffsetDateTime,
    pub claimed_at: Option<OffsetDateTime>,
    pub now: OffsetDateTime,
    pub next_sync_at: OffsetDateTime,
}

/// One asset line of a sync: an asset and this token's licences for it at one pricing.
#[derive(Clone, Debug, PartialEq)]
pub struct LicenceRow {
    pub adam_id: String,
    pub product_type: String,
    /// Comma-separated platforms (`iOS,macOS`).
    pub platforms: String,
    pub pricing_param: String,
    pub total: i64,
    pub assigned: i64,
    pub available: i64,
    pub retired: i64,
    pub device_assignable: bool,
    pub revocable: bool,
}

/// The outcome of a sync to record on a token.
pub struct VppSyncResult<'a> {
    pub now: OffsetDateTime,
    pub next_sync_at: OffsetDateTime,
    /// `None` for a success.
    pub error: Option<&'a str>,
    /// What the check says of the token (`ok`, `expired`, `invalid`, `revoked`), when known.
    pub apple_state: Option<(&'a str, Option<&'a str>)>,
    /// The location as Apple described it, when the sync read `/client/config`.
    pub location: Option<&'a VppLocation>,
    /// Apple's expiry of the token, when reported.
    pub expires_at: Option<OffsetDateTime>,
    /// The licences, for a success (replacing the token's earlier ones).
    pub licences: Option<&'a [LicenceRow]>,
}

/// An asset with the licences every token holds for it.
#[derive(Clone, Debug, PartialEq)]
pub struct AssetRecord {
    pub id: i64,
    pub adam_id: String,
    pub product_type: String,
    pub platforms: String,
    pub first_seen_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub licences: Vec<AssetLicence>,
}

/// One token's licences for an asset at one pricing.
#[derive(Clone, Debug, PartialEq)]
pub struct AssetLicence {
    pub token_id: i64,
    pub token_name: String,
    pub pricing_param: String,
    pub total: i64,
    pub assigned: i64,
    pub available: i64,
    pub retired: i64,
    pub device_assignable: bool,
    pub revocable: bool,
}

/// What deleting a token takes with it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VppDeleteImpact {
    /// Assets whose licences come only from this token: they disappear with it.
    pub assets_only_here: Vec<String>,
    /// Assets other tokens also hold: they stay, with fewer licences.
    pub assets_shared: i64,
    pub licences_total: i64,
    pub licences_assigned: i64,
}

const SELECT: &str = "SELECT t.id, t.name, t.apple_id, t.account_type, t.location_uid, t.location_name, t.org_name, \
     t.country, t.default_platform, t.website_url, t.token_sha256, t.expires_at, t.mdm_id, t.mdm_name, t.claimed_at, \
     t.apple_state, t.apple_state_message, t.apple_checked_at, t.last_sync_at, t.last_sync_status, t.last_sync_error, \
     t.last_success_at, t.next_sync_at, t.created_at, t.updated_at, t.renewed_at, t.version, \
     (SELECT COUNT(DISTINCT l.asset_id) FROM vpp_licences l WHERE l.token_id = t.id) AS asset_count, \
     (SELECT CAST(COALESCE(SUM(l.total_count), 0) AS BIGINT) FROM vpp_licences l WHERE l.token_id = t.id) AS licences_total, \
     (SELECT CAST(COALESCE(SUM(l.assigned_count), 0) AS BIGINT) FROM vpp_licences l WHERE l.token_id = t.id) AS licences_assigned \
     FROM vpp_tokens t";

fn aad(id: i64) -> String {
    format!("vpp_token:{id}:token")
}

fn from_row(row: &AnyRow) -> Result<VppTokenRecord, StoreError> {
    Ok(VppTokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        apple_id: row.try_get("apple_id")?,
        account_type: row.try_get("account_type")?,
        location_uid: row.try_get("location_uid")?,
        location_name: row.try_get("location_name")?,
        org_name: row.try_get("org_name")?,
        country: row.try_get("country")?,
        default_platform: row.try_get("default_platform")?,
        website_url: row.try_get("website_url")?,
        token_sha256: row.try_get("token_sha256")?,
        expires_at: from_millis(row.try_get("expires_at")?)?,
        mdm_id: row.try_get("mdm_id")?,
        mdm_name: row.try_get("mdm_name")?,
        claimed_at: opt_from_millis(row.try_get("claimed_at")?)?,
        apple_state: row.try_get("apple_state")?,
        apple_state_message: row.try_get("apple_state_message")?,
        apple_checked_at: opt_from_millis(row.try_get("apple_checked_at")?)?,
        last_sync_at: opt_from_millis(row.try_get("last_sync_at")?)?,
        last_sync_status: row.try_get("last_sync_status")?,
        last_sync_error: row.try_get("last_sync_error")?,
        last_success_at: opt_from_millis(row.try_get("last_success_at")?)?,
        next_sync_at: opt_from_millis(row.try_get("next_sync_at")?)?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
        renewed_at: opt_from_millis(row.try_get("renewed_at")?)?,
        version: row.try_get("version")?,
        asset_count: row.try_get("asset_count")?,
        licences_total: row.try_get("licences_total")?,
        licences_assigned: row.try_get("licences_assigned")?,
    })
}

async fn fetch_in(conn: &mut sqlx::AnyConnection, id: i64) -> Result<VppTokenRecord, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE t.id = $1")))
        .bind(id)
        .fetch_one(conn)
        .await?;
    from_row(&row)
}

/// Replaces the token's licences with `rows` and drops assets no token holds any more.
async fn replace_licences(
    conn: &mut sqlx::AnyConnection,
    token_id: i64,
    rows: &[LicenceRow],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM vpp_licences WHERE token_id = $1")
        .bind(token_id)
        .execute(&mut *conn)
        .await?;
    let now = to_millis(now);
    for r in rows {
        let asset_id: i64 = sqlx::query_scalar(
            "INSERT INTO vpp_assets (adam_id, product_type, platforms, first_seen_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (adam_id) DO UPDATE SET product_type = excluded.product_type, \
               platforms = excluded.platforms, updated_at = excluded.updated_at \
             RETURNING id",
        )
        .bind(&r.adam_id)
        .bind(&r.product_type)
        .bind(&r.platforms)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        // Apple lists an asset once per pricing; a repeated line adds up rather than failing.
        sqlx::query(
            "INSERT INTO vpp_licences (token_id, asset_id, pricing_param, total_count, assigned_count, \
               available_count, retired_count, device_assignable, revocable, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (token_id, asset_id, pricing_param) DO UPDATE SET \
               total_count = vpp_licences.total_count + excluded.total_count, \
               assigned_count = vpp_licences.assigned_count + excluded.assigned_count, \
               available_count = vpp_licences.available_count + excluded.available_count, \
               retired_count = vpp_licences.retired_count + excluded.retired_count",
        )
        .bind(token_id)
        .bind(asset_id)
        .bind(&r.pricing_param)
        .bind(r.total)
        .bind(r.assigned)
        .bind(r.available)
        .bind(r.retired)
        .bind(i64::from(r.device_assignable))
        .bind(i64::from(r.revocable))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    drop_orphan_assets(conn).await
}

async fn drop_orphan_assets(conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM vpp_assets WHERE NOT EXISTS (SELECT 1 FROM vpp_licences l WHERE l.asset_id = vpp_assets.id)",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Stores a new token; the id is assigned here and written into `audit` as its target.
    pub async fn vpp_token_create(
        &self,
        t: &NewVppToken<'_>,
        audit: NewAuditEntry,
    ) -> Result<VppTokenRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let l = t.location;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO vpp_tokens (name, name_key, apple_id, account_type, location_uid, location_name, org_name, \
               country, default_platform, website_url, token_enc, token_sha256, expires_at, mdm_id, mdm_name, \
               claimed_at, apple_state, apple_checked_at, next_sync_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 'ok', $17, $18, $17, $17) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(t.name)
        .bind(crate::ade_tokens::name_key(t.name))
        .bind(t.apple_id)
        .bind(t.account_type)
        .bind(&l.location_uid)
        .bind(&l.location_name)
        .bind(&l.org_name)
        .bind(&l.country)
        .bind(&l.default_platform)
        .bind(&l.website_url)
        .bind(Vec::<u8>::new())
        .bind(t.token_sha256)
        .bind(to_millis(t.expires_at))
        .bind(&l.mdm_id)
        .bind(&l.mdm_name)
        .bind(t.claimed_at.map(to_millis))
        .bind(to_millis(t.now))
        .bind(to_millis(t.next_sync_at))
        .fetch_optional(&mut *tx)
        .await?;
        // A taken name or location: refused without leaving a failed statement in the
        // transaction.
        let Some(id) = id else {
            tx.tx.rollback().await?;
            return Err(StoreError::Constraint {
                constraint: "vpp_tokens: the location or the name is already taken".into(),
            });
        };
        // The ciphertext is bound to the row id, which exists only after the insert.
        let sealed = self.master_key().seal(&aad(id), t.bearer.expose_secret().as_bytes())?;
        sqlx::query("UPDATE vpp_tokens SET token_enc = $1 WHERE id = $2")
            .bind(sealed)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        record(&mut tx, &audit.target(id)).await?;
        let token = fetch_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(token)
    }

    pub async fn vpp_token_list(&self) -> Result<Vec<VppTokenRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY t.id")))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn vpp_token_get(&self, id: i64) -> Result<Option<VppTokenRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE t.id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The token of Apple's location `uid`, if Russet has one.
    pub async fn vpp_token_find_by_location(&self, uid: &str) -> Result<Option<VppTokenRecord>, StoreError> {
        self.vpp_token_where("t.location_uid = $1", uid).await
    }

    /// The token whose name equals `name` ignoring case and surrounding spaces.
    pub async fn vpp_token_find_by_name(&self, name: &str) -> Result<Option<VppTokenRecord>, StoreError> {
        self.vpp_token_where("t.name_key = $1", &crate::ade_tokens::name_key(name))
            .await
    }

    async fn vpp_token_where(
        &self,
        condition: &'static str,
        value: &str,
    ) -> Result<Option<VppTokenRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE {condition}")))
            .bind(value)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The token's bearer (the whole `.vpptoken` text), decrypted.
    pub async fn vpp_token_bearer(&self, id: i64) -> Result<Option<SecretString>, StoreError> {
        let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT token_enc FROM vpp_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        sealed
            .map(|s| {
                Ok(SecretString::from(
                    self.master_key().open_string(&aad(id), &s)?.as_str(),
                ))
            })
            .transpose()
    }

    /// Puts a new file in place of the token's (renewal), if the token is still at
    /// `expected_version`. The token's id and licences stay.
    pub async fn vpp_token_renew(
        &self,
        id: i64,
        expected_version: i64,
        r: &VppRenewal<'_>,
        audit: NewAuditEntry,
    ) -> Result<VppTokenRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let sealed = self.master_key().seal(&aad(id), r.bearer.expose_secret().as_bytes())?;
        let l = r.location;
        let changed = sqlx::query(
            "UPDATE vpp_tokens SET token_enc = $1, token_sha256 = $2, expires_at = $3, \
               apple_id = COALESCE($4, apple_id), location_name = $5, org_name = $6, country = $7, \
               default_platform = $8, website_url = $9, mdm_id = $10, mdm_name = $11, \
               claimed_at = COALESCE($12, claimed_at), apple_state = 'ok', apple_state_message = NULL, \
               apple_checked_at = $13, next_sync_at = $14, renewed_at = $13, updated_at = $13, version = version + 1 \
             WHERE id = $15 AND version = $16",
        )
        .bind(sealed)
        .bind(r.token_sha256)
        .bind(to_millis(r.expires_at))
        .bind(r.apple_id)
        .bind(&l.location_name)
        .bind(&l.org_name)
        .bind(&l.country)
        .bind(&l.default_platform)
        .bind(&l.website_url)
        .bind(&l.mdm_id)
        .bind(&l.mdm_name)
        .bind(r.claimed_at.map(to_millis))
        .bind(to_millis(r.now))
        .bind(to_millis(r.next_sync_at))
        .bind(id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            tx.tx.rollback().await?;
            return Err(StoreError::Concurrent);
        }
        record(&mut tx, &audit.target(id)).await?;
        let token = fetch_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Records Russet's claim of the location (its `mdmInfo` written at Apple).
    pub async fn vpp_token_set_claimed(
        &self,
        id: i64,
        mdm_id: &str,
        mdm_name: &str,
        now: OffsetDateTime,
        audit: NewAuditEntry,
    ) -> Result<VppTokenRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE vpp_tokens SET mdm_id = $1, mdm_name = $2, claimed_at = $3, updated_at = $3, version = version + 1 \
             WHERE id = $4",
        )
        .bind(mdm_id)
        .bind(mdm_name)
        .bind(to_millis(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        record(&mut tx, &audit.target(id)).await?;
        let token = fetch_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Records a sync (or a failed check): its outcome, what Apple said of the token and,
    /// on success, the token's licences (replacing the earlier ones).
    pub async fn vpp_token_record_sync(&self, id: i64, s: &VppSyncResult<'_>) -> Result<VppTokenRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = to_millis(s.now);
        let status = if s.error.is_none() { "succeeded" } else { "failed" };
        sqlx::query(
            "UPDATE vpp_tokens SET last_sync_at = $1, last_sync_status = $2, last_sync_error = $3, \
               last_success_at = CASE WHEN $3 IS NULL THEN $1 ELSE last_success_at END, next_sync_at = $4, \
               updated_at = $1 WHERE id = $5",
        )
        .bind(now)
        .bind(status)
        .bind(s.error)
        .bind(to_millis(s.next_sync_at))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some((state, message)) = s.apple_state {
            sqlx::query(
                "UPDATE vpp_tokens SET apple_state = $1, apple_state_message = $2, apple_checked_at = $3 WHERE id = $4",
            )
            .bind(state)
            .bind(message)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(l) = s.location {
            sqlx::query(
                "UPDATE vpp_tokens SET location_name = $1, country = $2, default_platform = $3, website_url = $4, \
                   mdm_id = $5, mdm_name = $6 WHERE id = $7",
            )
            .bind(&l.location_name)
            .bind(&l.country)
            .bind(&l.default_platform)
            .bind(&l.website_url)
            .bind(&l.mdm_id)
            .bind(&l.mdm_name)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(exp) = s.expires_at {
            sqlx::query("UPDATE vpp_tokens SET expires_at = $1 WHERE id = $2")
                .bind(to_millis(exp))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(rows) = s.licences {
            replace_licences(&mut tx, id, rows, s.now).await?;
        }
        let token = fetch_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// What deleting the token would take with it.
    pub async fn vpp_token_delete_impact(&self, id: i64) -> Result<VppDeleteImpact, StoreError> {
        let only_here: Vec<String> = sqlx::query_scalar(
            "SELECT a.adam_id FROM vpp_assets a WHERE EXISTS (SELECT 1 FROM vpp_licences l WHERE l.asset_id = a.id \
               AND l.token_id = $1) AND NOT EXISTS (SELECT 1 FROM vpp_licences l WHERE l.asset_id = a.id \
               AND l.token_id <> $1) ORDER BY a.adam_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let row = sqlx::query(
            "SELECT COUNT(DISTINCT l.asset_id) AS assets, CAST(COALESCE(SUM(l.total_count), 0) AS BIGINT) AS total, \
               CAST(COALESCE(SUM(l.assigned_count), 0) AS BIGINT) AS assigned FROM vpp_licences l WHERE l.token_id = $1",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        let assets: i64 = row.try_get("assets")?;
        Ok(VppDeleteImpact {
            assets_shared: assets - only_here.len() as i64,
            assets_only_here: only_here,
            licences_total: row.try_get("total")?,
            licences_assigned: row.try_get("assigned")?,
        })
    }

    /// Deletes a token read at `expected_version` with its licences; assets no other token
    /// holds go too.
    pub async fn vpp_token_delete(
        &self,
        id: i64,
        expected_version: i64,
        audit: NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM vpp_licences WHERE token_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        crate::delete_versioned(&mut tx, "vpp_tokens", id, expected_version, &audit).await?;
        drop_orphan_assets(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Assets with every token's licences, ordered by Apple id; `token_id` keeps only the
    /// assets that token holds.
    pub async fn vpp_assets(&self, token_id: Option<i64>) -> Result<Vec<AssetRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id, a.adam_id, a.product_type, a.platforms, a.first_seen_at, a.updated_at, \
               l.token_id, t.name AS token_name, l.pricing_param, l.total_count, l.assigned_count, l.available_count, \
               l.retired_count, l.device_assignable, l.revocable \
             FROM vpp_assets a JOIN vpp_licences l ON l.asset_id = a.id JOIN vpp_tokens t ON t.id = l.token_id \
             WHERE $1 IS NULL OR a.id IN (SELECT asset_id FROM vpp_licences WHERE token_id = $1) \
             ORDER BY a.adam_id, l.token_id, l.pricing_param",
        )
        .bind(token_id)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<AssetRecord> = Vec::new();
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            if out.last().is_none_or(|a| a.id != id) {
                out.push(AssetRecord {
                    id,
                    adam_id: row.try_get("adam_id")?,
                    product_type: row.try_get("product_type")?,
                    platforms: row.try_get("platforms")?,
                    first_seen_at: from_millis(row.try_get("first_seen_at")?)?,
                    updated_at: from_millis(row.try_get("updated_at")?)?,
                    licences: Vec::new(),
                });
            }
            if let Some(asset) = out.last_mut() {
                asset.licences.push(AssetLicence {
                    token_id: row.try_get("token_id")?,
                    token_name: row.try_get("token_name")?,
                    pricing_param: row.try_get("pricing_param")?,
                    total: row.try_get("total_count")?,
                    assigned: row.try_get("assigned_count")?,
                    available: row.try_get("available_count")?,
                    retired: row.try_get("retired_count")?,
                    device_assignable: row.try_get::<i64, _>("device_assignable")? != 0,
                    revocable: row.try_get::<i64, _>("revocable")? != 0,
                });
            }
        }
        Ok(out)
    }
}
