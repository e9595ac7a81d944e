//! Named leases in the database, so that a background job (a token's sync, its profile
//! assignments) runs in one process at a time even when several `russet serve` share one
//! PostgreSQL. A lease lapses at `expires_at` unless its owner renews it.

use time::{Duration, OffsetDateTime};

use crate::{Store, StoreError, to_millis};

impl Store {
    /// Takes the lease `name` for `owner` until `now + ttl`, if it is free, lapsed, or
    /// already `owner`'s. Returns whether it was taken.
    pub async fn lease_acquire(
        &self,
        name: &str,
        owner: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "INSERT INTO leases (name, owner, acquired_at, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, acquired_at = excluded.acquired_at, \
               expires_at = excluded.expires_at \
             WHERE leases.expires_at <= $3 OR leases.owner = excluded.owner",
        )
        .bind(name)
        .bind(owner)
        .bind(to_millis(now))
        .bind(to_millis(now + ttl))
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Extends a lease its owner still holds. Returns false when it was lost (lapsed and
    /// taken by another owner, or released).
    pub async fn lease_renew(
        &self,
        name: &str,
        owner: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query("UPDATE leases SET expires_at = $1 WHERE name = $2 AND owner = $3")
            .bind(to_millis(now + ttl))
            .bind(name)
            .bind(owner)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(renewed == 1)
    }

    /// Gives a lease up (only its owner can).
    pub async fn lease_release(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The current holder of a lease and until when, if it is held.
    pub async fn lease_holder(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(String, OffsetDateTime)>, StoreError> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT owner, expires_at FROM leases WHERE name = $1 AND expires_at > $2")
                .bind(name)
                .bind(to_millis(now))
                .fetch_optional(self.pool())
                .await?;
        row.map(|(owner, until)| Ok((owner, crate::from_millis(until)?)))
            .transpose()
    }
}
