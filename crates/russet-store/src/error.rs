use crate::crypto::CryptoError;

/// A storage failure. Messages say what happened and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database_url {url}: use sqlite://PATH or postgres://USER@HOST/DATABASE")]
    UnsupportedUrl { url: String },
    #[error("cannot connect to the database {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error(
        "the master key ({source_desc}) does not match this database: its secrets were encrypted with another \
         key. Start Russet with the master key the database was created with (the master.key file of its \
         data directory, or RUSSET_MASTER_KEY); every `russet serve` sharing one database needs the same key"
    )]
    MasterKeyMismatch { source_desc: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A uniqueness or reference rule of the schema refused the change.
    #[error("the change conflicts with existing data ({constraint})")]
    Constraint { constraint: String },
    /// The row changed between reading and writing it (optimistic concurrency).
    #[error("the record was changed by another request meanwhile; read it again and retry")]
    Concurrent,
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && (db.is_unique_violation()
                || db.is_foreign_key_violation()
                // SQLite reports ON DELETE RESTRICT as SQLITE_CONSTRAINT_TRIGGER (1811).
                || db.message().contains("FOREIGN KEY constraint failed"))
        {
            return StoreError::Constraint {
                constraint: db
                    .constraint()
                    .map(str::to_string)
                    .unwrap_or_else(|| db.message().to_string()),
            };
        }
        StoreError::Database(e)
    }
}
