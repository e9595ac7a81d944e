//! Russet's persistence: the database (SQLite by default, PostgreSQL to grow past one
//! machine), its migrations, and the encryption of secrets at rest.
//!
//! One implementation serves both backends: the SQL is written once with `$N` parameters,
//! which SQLite and PostgreSQL both accept, and runs through sqlx's `Any` driver, so the
//! two cannot drift apart in behaviour; where the dialects differ, [`Backend`] chooses.
//! Each backend has its own migration directory with the same tables and columns (a test
//! compares them). Times are stored as Unix epoch milliseconds, secrets only as ciphertexts
//! sealed by [`crypto::MasterKey`]. Every mutating method writes its audit entry in the same
//! transaction as the change, so the audit log cannot miss or invent a change.
//!
//! The store holds no business rules: callers (the `russet-core` domain) decide what may
//! change; the store makes it durable, atomic and secret.

pub mod ade_enroll;
pub mod ade_tokens;
pub mod admin_keys;
pub mod assignments;
pub mod audit;
mod connect_batch;
pub mod crypto;
pub mod devices;
pub mod enrollment_links;
mod error;
pub mod health;
pub mod jobs;
pub mod leases;
pub mod mdm;
pub mod profiles;
pub mod push_cert;
pub mod sync;
pub mod users;
pub mod vpp;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use time::OffsetDateTime;

pub use error::StoreError;

use crate::crypto::{MasterKey, MasterKeySource};

/// The database behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Connection settings for [`Store::open`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// `sqlite://path/to/file.db` or `postgres://user@host/db`.
    pub url: String,
    /// Upper bound on pooled connections.
    pub max_connections: u32,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            max_connections: 10,
        }
    }
}

/// A handle on the database; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    key: Arc<MasterKey>,
    /// SQLite has one writer at a time. Writers queue here, in the process, instead of in
    /// SQLite's busy handler, which sleeps (1, 2, 5, 10… ms) between attempts and leaves the
    /// CPU idle while requests wait. `None` on PostgreSQL.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Device connects wait here to be written together (see `connect_batch`).
    connects: tokio::sync::mpsc::Sender<connect_batch::Job>,
}

/// A write transaction. On SQLite it holds the process's write gate until it ends.
pub(crate) struct WriteTx {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Any>,
    pub(crate) _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

const MASTER_KEY_CHECK: &str = "master_key_check";
const MASTER_KEY_CHECK_PLAINTEXT: &[u8] = b"russet master key check v1";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects, applies pending migrations and checks that `key` is the master key this
    /// database's secrets were sealed with. Several processes may do this at once on one
    /// PostgreSQL database: migrations take a lock, the key check is first-writer-wins.
    pub async fn open(options: &StoreOptions, key: MasterKey) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if options.url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if options.url.starts_with("postgres://") || options.url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl {
                url: redact_url(&options.url),
            });
        };
        if backend == Backend::Sqlite {
            create_private_sqlite_file(&options.url)?;
        }
        let connect = AnyConnectOptions::from_str(&options.url).map_err(|e| StoreError::Connect {
            url: redact_url(&options.url),
            detail: e.to_string(),
        })?;
        // SQLite has one writer; a few connections serve readers beside it, and bound the
        // page cache memory (16 MiB each).
        let max_connections = if backend == Backend::Sqlite {
            options.max_connections.clamp(1, 4)
        } else {
            options.max_connections.max(1)
        };
        let mut pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer. secure_delete overwrites deleted
                    // rows on the pages being written, so removed key material does not linger.
                    // Checkpoints run in the background (see `checkpointer`), not inside commits.
                    // A 16 MiB page cache keeps a large fleet's serial index in memory.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA secure_delete = FAST; \
                         PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -16384; PRAGMA busy_timeout = 10000; \
                         PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(connect).await.map_err(|e| StoreError::Connect {
            url: redact_url(&options.url),
            detail: e.to_string(),
        })?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        let write_gate = (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let (connects, connect_queue) = tokio::sync::mpsc::channel(4096);
        let store = Store {
            pool,
            backend,
            key: Arc::new(key),
            write_gate: write_gate.clone(),
            connects,
        };
        tokio::spawn(connect_batch::Writer::new(store.pool.clone(), backend, write_gate).run(connect_queue));
        store.check_master_key().await?;
        if backend == Backend::Sqlite {
            tokio::spawn(checkpointer(store.pool.clone()));
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The master key (for sealing values in tests and tools; never leaves the process).
    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }

    /// Refreshes the query planner's statistics of the device tables (after a sync that
    /// changed many devices). Without them SQLite scans a whole token's devices where a
    /// serial-number lookup would do. Bounded on SQLite (`analysis_limit`); PostgreSQL samples.
    pub async fn analyze_devices(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        match self.backend {
            Backend::Sqlite => {
                conn.execute("PRAGMA analysis_limit = 2000").await?;
                conn.execute("ANALYZE ade_devices").await?;
                conn.execute("ANALYZE ade_assignment_events").await?;
            }
            Backend::Postgres => {
                conn.execute("ANALYZE ade_devices, ade_assignment_events").await?;
            }
        }
        Ok(())
    }

    #[doc(hidden)]
    /// Runs a statement on every pooled connection (benchmark diagnostics only).
    pub async fn debug_exec(&self, sql: &str) {
        for _ in 0..self.pool.size().max(1) {
            if let Ok(mut c) = self.pool.acquire().await {
                let _ = c.execute(sqlx::AssertSqlSafe(sql.to_string())).await;
            }
        }
    }

    /// True when the database answers a trivial query within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(&self.pool)).await,
            Ok(Ok(_))
        )
    }

    /// Closes every pooled connection (for a clean shutdown), folding SQLite's WAL back into
    /// the database file first.
    pub async fn close(&self) {
        if self.backend == Backend::Sqlite
            && let Ok(mut conn) = self.pool.acquire().await
        {
            let _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
        }
        self.pool.close().await;
    }

    /// The value of `key` in the settings table, storing `proposed` first if it has none
    /// (so every process sharing the database reads the same value).
    pub async fn setting_get_or_init(&self, key: &str, proposed: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(proposed)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await?)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so two writers queue on the busy timeout instead of one failing when
    /// it upgrades a read lock.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let gate = self.write_gate().await;
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx { tx, _gate: gate })
    }

    /// The SQLite write gate (see [`Store`]), to hold around a single write statement on the
    /// pool; nothing on PostgreSQL.
    pub(crate) async fn write_gate(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        }
    }

    async fn check_master_key(&self) -> Result<(), StoreError> {
        let aad = "settings:master_key_check";
        let sealed = self.key.seal(aad, MASTER_KEY_CHECK_PLAINTEXT)?;
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(MASTER_KEY_CHECK)
            .bind(STANDARD.encode(&sealed))
            .execute(&self.pool)
            .await?;
        let stored: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(MASTER_KEY_CHECK)
            .fetch_one(&self.pool)
            .await?;
        let ok = STANDARD
            .decode(stored.trim())
            .ok()
            .and_then(|bytes| self.key.open(aad, &bytes).ok())
            .is_some_and(|plain| plain.as_slice() == MASTER_KEY_CHECK_PLAINTEXT);
        if ok {
            Ok(())
        } else {
            Err(StoreError::MasterKeyMismatch {
                source_desc: describe_source(self.key.source()),
            })
        }
    }
}

/// Creates a new SQLite database file readable by its owner only (SQLite gives its WAL and
/// shared-memory files the same mode). An existing file is left as it is.
fn create_private_sqlite_file(url: &str) -> Result<(), StoreError> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" || std::path::Path::new(path).exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Connect {
            url: redact_url(url),
            detail: format!("cannot create the database file: {e}"),
        }),
    }
}

/// Copies SQLite's write-ahead log into the database file every second, beside the writer
/// rather than inside its commits (PASSIVE: it waits for no one and blocks no one). Ends
/// when the pool closes.
async fn checkpointer(pool: AnyPool) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Ok(mut conn) = pool.acquire().await
            && let Err(e) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await
        {
            tracing::debug!(error = %e, "WAL checkpoint skipped");
        }
    }
}

fn describe_source(source: &MasterKeySource) -> String {
    match source {
        MasterKeySource::Environment => "RUSSET_MASTER_KEY".to_string(),
        MasterKeySource::File(p) => p.display().to_string(),
        MasterKeySource::Created(p) => format!("{} (just created)", p.display()),
    }
}

/// Hides a password in a database URL before it goes into a message or a log.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _password)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

pub(crate) fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_millis(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {ms} is out of range")))
}

pub(crate) fn opt_from_millis(ms: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    ms.map(from_millis).transpose()
}

/// Deletes the row `id` of `table` if it is still at `expected_version` (optimistic
/// concurrency), then writes its audit entry, in the caller's transaction.
pub(crate) async fn delete_versioned(
    tx: &mut sqlx::AnyConnection,
    table: &'static str,
    id: i64,
    expected_version: i64,
    audit: &audit::NewAuditEntry,
) -> Result<(), StoreError> {
    let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE id = $1 AND version = $2"
    )))
    .bind(id)
    .bind(expected_version)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if deleted != 1 {
        return Err(StoreError::Concurrent);
    }
    audit::record(&mut *tx, &audit.clone().target(id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
