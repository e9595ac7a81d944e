//! Test support shared by Russet's crates (a dev-dependency only, never shipped): a fresh
//! database per test — a SQLite file in a temporary directory, or a PostgreSQL schema of
//! its own when `RUSSET_TEST_POSTGRES_URL` is set — and loud notices for tests skipped
//! because PostgreSQL or a command-line tool is missing.
//!
//! Skips are written straight to the process' stderr, past the test harness' output
//! capture, so `cargo test` shows them even when every test passes.

use std::io::Write;
use std::path::{Path, PathBuf};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The environment variable naming the PostgreSQL server for tests, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`. `.ci/run` sets it.
pub const POSTGRES_ENV: &str = "RUSSET_TEST_POSTGRES_URL";

/// Says, visibly, that a test did not run and why.
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {why} ***");
}

/// The PostgreSQL URL for tests, or `None` after announcing the skip.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            skip(
                test,
                &format!("PostgreSQL tests need {POSTGRES_ENV} (e.g. postgres://postgres@127.0.0.1:5432/test)"),
            );
            None
        }
    }
}

/// True when `program` can be run; otherwise announces the skip.
pub fn have_command(test: &str, program: &str, package: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg("version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        skip(
            test,
            &format!("the `{program}` command is not installed (Debian package {package})"),
        );
    }
    found
}

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of a test's own. SQLite lives in `dir`; a PostgreSQL schema is dropped when
/// this value is dropped.
pub struct TestDb {
    pub backend: Backend,
    /// The URL to give Russet.
    pub url: String,
    /// A temporary directory for the test (the SQLite file, a data directory…).
    pub dir: tempfile::TempDir,
    /// The PostgreSQL schema and server URL, for dumps and clean-up.
    pub pg: Option<(String, String)>,
}

fn random_suffix() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

impl TestDb {
    /// A new SQLite database file.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("russet.db").display());
        TestDb {
            backend: Backend::Sqlite,
            url,
            dir,
            pg: None,
        }
    }

    /// A new, empty PostgreSQL schema, or `None` (announced) without `RUSSET_TEST_POSTGRES_URL`.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let server = postgres_url(test)?;
        let schema = format!("russet_test_{}", random_suffix());
        let mut conn = PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={server} is set but unreachable: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("create test schema");
        let sep = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{sep}options[search_path]={schema}");
        let dir = tempfile::tempdir().expect("temporary directory");
        Some(TestDb {
            backend: Backend::Postgres,
            url,
            dir,
            pg: Some((schema, server)),
        })
    }

    /// Both backends: SQLite always, PostgreSQL when configured.
    pub async fn all(test: &str) -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite()];
        dbs.extend(TestDb::postgres(test).await);
        dbs
    }

    /// The SQLite database file (its WAL and shared-memory files sit beside it).
    pub fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("russet.db")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every byte the database holds on disk or would give away in a dump: the SQLite files,
    /// or a `pg_dump` of the schema.
    pub fn dump(&self) -> Vec<u8> {
        match &self.pg {
            None => {
                let mut all = Vec::new();
                for entry in std::fs::read_dir(self.dir.path()).expect("read test dir").flatten() {
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.starts_with("russet.db") {
                        all.extend(std::fs::read(entry.path()).expect("read database file"));
                    }
                }
                all
            }
            Some((schema, server)) => {
                let out = std::process::Command::new("pg_dump")
                    .arg("--dbname")
                    .arg(server)
                    .arg("--schema")
                    .arg(schema)
                    .output()
                    .expect("pg_dump runs (Debian package postgresql-client)");
                assert!(
                    out.status.success(),
                    "pg_dump failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((schema, server)) = self.pg.take() {
            // Best effort, on a thread of its own: Drop may run inside or outside a runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut conn = PgConnection::connect(&server).await.ok()?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                        .execute(&mut conn)
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

/// Looks for `needle` in `haystack` as bytes.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// How `openssl smime -encrypt` writes its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmimeForm {
    /// S/MIME with `-stream`: BER with indefinite lengths, as Apple makes server tokens.
    SmimeStream,
    Der,
    Pem,
}

/// Apple's decrypted server token layout (MIME headers with CRLF, the JSON between the
/// MESSAGE lines), with secrets derived from `tag` so every token is distinct.
pub fn apple_token_payload(consumer_key: &str, tag: &str, expiry_rfc3339: &str) -> Vec<u8> {
    format!(
        "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n-----BEGIN MESSAGE-----\n\
         {{\"consumer_key\":\"{consumer_key}\",\"consumer_secret\":\"CS_secret{tag}\",\"access_token\":\"AT_token{tag}\",\
         \"access_secret\":\"AS_secret{tag}\",\"access_token_expiry\":\"{expiry_rfc3339}\"}}\n-----END MESSAGE-----\n"
    )
    .into_bytes()
}

/// Encrypts `payload` for the certificate in `cert_pem` with the real `openssl smime`
/// command, as Apple Business Manager does for a server token. `cipher` is an openssl
/// option such as `-aes128`.
pub fn smime_encrypt(cert_pem: &str, payload: &[u8], cipher: &str, form: SmimeForm) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cert = dir.path().join("cert.pem");
    let input = dir.path().join("payload.txt");
    std::fs::write(&cert, cert_pem).expect("write cert");
    std::fs::write(&input, payload).expect("write payload");
    let mut cmd = std::process::Command::new("openssl");
    cmd.arg("smime")
        .arg("-encrypt")
        .arg("-binary")
        .arg(cipher)
        .arg("-in")
        .arg(&input);
    match form {
        SmimeForm::SmimeStream => {
            cmd.arg("-stream");
        }
        SmimeForm::Der => {
            cmd.args(["-outform", "DER"]);
        }
        SmimeForm::Pem => {
            cmd.args(["-outform", "PEM"]);
        }
    }
    cmd.arg(&cert);
    let out = cmd.output().expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl smime -encrypt failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A self-signed certificate and key made by the `openssl` command (for "another MDM's"
/// public key, or a TLS server). Returns (cert PEM, key PEM).
pub fn openssl_self_signed(common_name: &str) -> (String, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cert = dir.path().join("c.pem");
    let key = dir.path().join("k.pem");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={common_name}"))
        .args(["-addext", &format!("subjectAltName=DNS:{common_name},IP:127.0.0.1")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(cert).expect("cert"),
        std::fs::read_to_string(key).expect("key"),
    )
}
