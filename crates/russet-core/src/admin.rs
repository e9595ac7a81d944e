//! Admin API keys and the audit log, as the domain offers them.

use russet_store::admin_keys::{AdminKey, NewAdminKey};
use russet_store::audit::{Actor, NewAuditEntry};
pub use russet_store::audit::{AuditEntry, AuditQuery};

use crate::Core;
use crate::error::CoreError;

/// Default and largest page of audit entries.
pub const AUDIT_PAGE_DEFAULT: u32 = 50;
pub const AUDIT_PAGE_MAX: u32 = 500;

impl Core {
    /// Creates the first admin key when this database never had one.
    pub async fn admin_key_bootstrap(&self) -> Result<Option<NewAdminKey>, CoreError> {
        let now = self.clock.now();
        let audit = NewAuditEntry::new(
            now,
            &Actor::system(),
            "admin_key.create",
            "admin_key",
            "created the initial admin API key on first start".into(),
        );
        Ok(self.store.admin_key_bootstrap(now, audit).await?)
    }

    /// Revokes every admin key and makes a new one.
    pub async fn admin_key_rotate(&self, actor: &Actor) -> Result<(NewAdminKey, u64), CoreError> {
        let now = self.clock.now();
        let audit = NewAuditEntry::new(
            now,
            actor,
            "admin_key.rotate",
            "admin_key",
            "rotated the admin API key: every previous key is revoked".into(),
        );
        Ok(self.store.admin_key_rotate("rotated", now, audit).await?)
    }

    /// The active key matching a presented secret.
    pub async fn admin_key_verify(&self, presented: &str) -> Result<Option<AdminKey>, CoreError> {
        Ok(self.store.admin_key_verify(presented).await?)
    }

    /// Audit entries newest first; `limit` is clamped to 1..=500 (default 50).
    pub async fn audit_list(&self, mut query: AuditQuery) -> Result<Vec<AuditEntry>, CoreError> {
        query.limit = match query.limit {
            0 => AUDIT_PAGE_DEFAULT,
            n => n.min(AUDIT_PAGE_MAX),
        };
        Ok(self.store.audit_list(&query).await?)
    }
}
