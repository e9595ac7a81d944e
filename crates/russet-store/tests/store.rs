//! The store's behaviour, run against SQLite and (when configured) PostgreSQL.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use russet_store::ade_tokens::NewCredentials;
use russet_store::audit::{Actor, AuditQuery, NewAuditEntry};
use russet_store::crypto::{MasterKey, MasterKeySource};
use russet_store::{Store, StoreError, StoreOptions};
use russet_testkit::{TestDb, contains};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

fn key(byte: u8) -> MasterKey {
    MasterKey::from_base64(&STANDARD.encode([byte; 32]), MasterKeySource::Environment).unwrap()
}

async fn open(db: &TestDb, byte: u8) -> Result<Store, StoreError> {
    Store::open(&StoreOptions::new(&db.url), key(byte)).await
}

fn entry(action: &str, summary: &str) -> NewAuditEntry {
    NewAuditEntry::new(
        NOW,
        &Actor::admin_key(1, "initial"),
        action,
        "ade_token",
        summary.to_string(),
    )
}

async fn add_device(db: &TestDb, token_id: i64) {
    // Device sync arrives in a later issue; its table already exists, so insert directly.
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::query("INSERT INTO ade_devices (token_id, serial_number, created_at) VALUES ($1, $2, $3)")
        .bind(token_id)
        .bind("C02XYZ123")
        .bind(0i64)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn opens_migrates_and_reopens() {
    for db in TestDb::all("store::opens_migrates_and_reopens").await {
        let store = open(&db, 1).await.unwrap();
        assert!(store.ping(std::time::Duration::from_secs(2)).await);
        store.close().await;
        // A second start applies nothing new and accepts the same key.
        let again = open(&db, 1).await.unwrap();
        assert!(again.ade_token_list().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn wrong_master_key_is_refused_at_open() {
    for db in TestDb::all("store::wrong_master_key_is_refused_at_open").await {
        open(&db, 1).await.unwrap().close().await;
        let err = open(&db, 2).await.unwrap_err();
        assert!(matches!(err, StoreError::MasterKeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("RUSSET_MASTER_KEY"), "{err}");
    }
}

#[tokio::test]
async fn unsupported_url_is_explained() {
    let err = Store::open(&StoreOptions::new("mysql://x"), key(1)).await.unwrap_err();
    assert!(err.to_string().contains("sqlite://"), "{err}");
}

#[tokio::test]
async fn admin_keys_bootstrap_once_verify_and_rotate() {
    for db in TestDb::all("store::admin_keys").await {
        let store = open(&db, 1).await.unwrap();
        let audit = NewAuditEntry::new(
            NOW,
            &Actor::system(),
            "admin_key.create",
            "admin_key",
            "first key".into(),
        );
        let first = store
            .admin_key_bootstrap(NOW, audit.clone())
            .await
            .unwrap()
            .expect("first start makes a key");
        assert!(first.secret.expose_secret().starts_with("rst_"));
        assert!(
            store.admin_key_bootstrap(NOW, audit.clone()).await.unwrap().is_none(),
            "only once"
        );
        let found = store
            .admin_key_verify(first.secret.expose_secret())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, first.key.id);
        assert!(store.admin_key_verify("rst_wrong").await.unwrap().is_none());

        let rot = NewAuditEntry::new(
            NOW,
            &Actor::local("russet admin-key rotate"),
            "admin_key.rotate",
            "admin_key",
            "rotated".into(),
        );
        let (second, revoked) = store.admin_key_rotate("rotated", NOW, rot).await.unwrap();
        assert_eq!(revoked, 1);
        assert!(
            store
                .admin_key_verify(first.secret.expose_secret())
                .await
                .unwrap()
                .is_none(),
            "old key revoked"
        );
        assert!(
            store
                .admin_key_verify(second.secret.expose_secret())
                .await
                .unwrap()
                .is_some()
        );
        // Only hashes are stored.
        let dump = db.dump();
        assert!(!contains(&dump, second.secret.expose_secret().as_bytes()));
        assert!(!contains(&dump, first.secret.expose_secret().as_bytes()));
        let log = store
            .audit_list(&AuditQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["admin_key.rotate", "admin_key.create"]
        );
    }
}

#[tokio::test]
async fn token_lifecycle_with_audit_and_secrets_sealed() {
    for db in TestDb::all("store::token_lifecycle").await {
        let store = open(&db, 1).await.unwrap();
        let private_key =
            SecretString::from("-----BEGIN PRIVATE KEY-----\nSECRET-KEY-MATERIAL-1234\n-----END PRIVATE KEY-----\n");
        let t = store
            .ade_token_create(
                "Main ABM",
                &private_key,
                "-----BEGIN CERTIFICATE-----\nCERT\n",
                NOW,
                entry("ade_token.create", "created"),
            )
            .await
            .unwrap();
        assert!(!t.has_credentials);
        assert_eq!((t.device_count, t.profile_count, t.version), (0, 0, 1));
        assert_eq!(
            store.ade_token_find_by_name("  main abm ").await.unwrap().unwrap().id,
            t.id
        );
        // Names are unique regardless of case.
        let dup = store
            .ade_token_create("MAIN ABM", &private_key, "c", NOW, entry("ade_token.create", "x"))
            .await;
        assert!(matches!(dup, Err(StoreError::Constraint { .. })), "{dup:?}");
        assert_eq!(
            store
                .ade_token_private_key(t.id)
                .await
                .unwrap()
                .unwrap()
                .expose_secret(),
            private_key.expose_secret()
        );

        let creds_json = SecretString::from(
            r#"{"consumer_key":"CK_PLAIN","consumer_secret":"CS_TOPSECRET","access_token":"AT_TOPSECRET","access_secret":"AS_TOPSECRET","access_token_expiry":"2027-01-01T00:00:00Z"}"#,
        );
        let creds = NewCredentials {
            json: &creds_json,
            consumer_key_hash: "abc123",
            expires_at: datetime!(2027-01-01 0:00 UTC),
            apple_id: "admin@example.com",
        };
        let active = store
            .ade_token_store_credentials(t.id, t.version, &creds, NOW, entry("ade_token.upload", "uploaded"))
            .await
            .unwrap();
        assert!(active.has_credentials);
        assert_eq!(active.activated_at, Some(NOW));
        assert_eq!(active.renewed_at, None, "a first upload is not a renewal");
        assert_eq!(active.version, 2);
        // A writer holding the old version loses and changes nothing.
        let stale = store
            .ade_token_store_credentials(t.id, t.version, &creds, NOW, entry("x", "x"))
            .await;
        assert!(matches!(stale, Err(StoreError::Concurrent)));
        let later = datetime!(2026-12-01 0:00 UTC);
        let renewed = store
            .ade_token_store_credentials(t.id, active.version, &creds, later, entry("ade_token.renew", "renewed"))
            .await
            .unwrap();
        assert_eq!((renewed.activated_at, renewed.renewed_at), (Some(NOW), Some(later)));
        assert_eq!(
            store
                .ade_token_credentials(t.id)
                .await
                .unwrap()
                .unwrap()
                .expose_secret(),
            creds_json.expose_secret()
        );
        assert_eq!(
            store
                .ade_token_find_by_consumer_key_hash("abc123")
                .await
                .unwrap()
                .unwrap()
                .id,
            t.id
        );

        // The plaintext secrets are nowhere in the database.
        let dump = db.dump();
        assert!(!dump.is_empty());
        for secret in [
            "SECRET-KEY-MATERIAL-1234",
            "CS_TOPSECRET",
            "AT_TOPSECRET",
            "AS_TOPSECRET",
            "CK_PLAIN",
        ] {
            assert!(
                !contains(&dump, secret.as_bytes()),
                "{secret} found in the {:?} database",
                db.backend
            );
        }

        // A device refers to the token: the schema refuses the delete.
        add_device(&db, t.id).await;
        let current = store.ade_token_get(t.id).await.unwrap().unwrap();
        assert_eq!(current.device_count, 1);
        let refused = store
            .ade_token_delete(t.id, current.version, entry("ade_token.delete", "deleted"))
            .await;
        assert!(matches!(refused, Err(StoreError::Constraint { .. })), "{refused:?}");
        assert!(store.ade_token_get(t.id).await.unwrap().is_some());

        let log = store
            .audit_list(&AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["ade_token.renew", "ade_token.upload", "ade_token.create"],
            "refused and failed changes leave no entry"
        );
        assert!(
            log.iter()
                .all(|e| e.target_id.as_deref() == Some(t.id.to_string().as_str()))
        );
        assert_eq!(log[0].actor_key_id, Some(1));
    }
}

#[tokio::test]
async fn delete_removes_key_material() {
    for db in TestDb::all("store::delete_removes_key_material").await {
        let store = open(&db, 1).await.unwrap();
        let pk = SecretString::from("KEY");
        let t = store
            .ade_token_create("t", &pk, "c", NOW, entry("ade_token.create", "c"))
            .await
            .unwrap();
        store
            .ade_token_delete(t.id, t.version, entry("ade_token.delete", "d"))
            .await
            .unwrap();
        assert!(store.ade_token_get(t.id).await.unwrap().is_none());
        assert!(store.ade_token_private_key(t.id).await.unwrap().is_none());
        // The name is free again.
        store
            .ade_token_create("t", &pk, "c", NOW, entry("ade_token.create", "c"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sealed_values_are_bound_to_their_row() {
    for db in TestDb::all("store::sealed_values_are_bound_to_their_row").await {
        let store = open(&db, 1).await.unwrap();
        let a = store
            .ade_token_create("a", &SecretString::from("KEY-A"), "c", NOW, entry("c", "c"))
            .await
            .unwrap();
        let b = store
            .ade_token_create("b", &SecretString::from("KEY-B"), "c", NOW, entry("c", "c"))
            .await
            .unwrap();
        // Someone with database access copies a's ciphertext into b.
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        sqlx::query("UPDATE ade_tokens SET private_key_enc = (SELECT private_key_enc FROM ade_tokens WHERE id = $1) WHERE id = $2")
            .bind(a.id)
            .bind(b.id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert!(matches!(
            store.ade_token_private_key(b.id).await,
            Err(StoreError::Crypto(_))
        ));
        assert_eq!(
            store
                .ade_token_private_key(a.id)
                .await
                .unwrap()
                .unwrap()
                .expose_secret(),
            "KEY-A"
        );
    }
}

#[tokio::test]
async fn audit_pages_and_filters() {
    for db in TestDb::all("store::audit_pages_and_filters").await {
        let store = open(&db, 1).await.unwrap();
        for i in 0..5 {
            store
                .audit_record(&entry("thing.do", &format!("n{i}")).target(i % 2))
                .await
                .unwrap();
        }
        let page1 = store
            .audit_list(&AuditQuery {
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            page1.iter().map(|e| e.summary.as_str()).collect::<Vec<_>>(),
            ["n4", "n3"]
        );
        let page2 = store
            .audit_list(&AuditQuery {
                limit: 2,
                before_id: Some(page1[1].id),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            page2.iter().map(|e| e.summary.as_str()).collect::<Vec<_>>(),
            ["n2", "n1"]
        );
        let odd = store
            .audit_list(&AuditQuery {
                limit: 10,
                target_type: Some("ade_token".into()),
                target_id: Some("1".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(odd.iter().map(|e| e.summary.as_str()).collect::<Vec<_>>(), ["n3", "n1"]);
        assert_eq!(page1[0].at, NOW);
    }
}

/// The two migration sets must describe the same tables and columns.
#[tokio::test]
async fn sqlite_and_postgres_schemas_match() {
    let Some(pg) = TestDb::postgres("store::sqlite_and_postgres_schemas_match").await else {
        return;
    };
    let lite = TestDb::sqlite();
    open(&pg, 1).await.unwrap().close().await;
    open(&lite, 1).await.unwrap().close().await;

    let pool = sqlx::AnyPool::connect(&lite.url).await.unwrap();
    let mut sqlite_cols: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT m.name, p.name, p.\"notnull\" FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let pool = sqlx::AnyPool::connect(&pg.url).await.unwrap();
    let schema = pg.pg.as_ref().unwrap().0.clone();
    let mut pg_cols: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END \
         FROM information_schema.columns WHERE table_schema = $1 AND table_name NOT LIKE '\\_sqlx%'",
    )
    .bind(schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    // SQLite does not report NOT NULL on an INTEGER PRIMARY KEY; PostgreSQL does.
    for c in sqlite_cols.iter_mut() {
        if c.1 == "id" {
            c.2 = 1;
        }
    }
    sqlite_cols.sort();
    pg_cols.sort();
    assert_eq!(sqlite_cols, pg_cols);
}

/// One page of devices for [`sync_pages_count_and_mark_new_devices`].
fn devices(serials: &[&str]) -> Vec<russet_store::devices::DeviceUpsert> {
    serials
        .iter()
        .map(|s| russet_store::devices::DeviceUpsert {
            serial_number: s.to_string(),
            model: Some("iPad Air".into()),
            op_type: "fetched".into(),
            ..Default::default()
        })
        .collect()
}

#[tokio::test]
async fn sync_pages_count_and_mark_new_devices() {
    use russet_store::sync::SyncPage;
    let mut dbs = vec![TestDb::sqlite()];
    dbs.extend(TestDb::postgres("store::sync_pages_count").await);
    for db in dbs {
        let store = open(&db, 1).await.unwrap();
        let key = SecretString::from("k");
        let a = store
            .ade_token_create("A", &key, "ca", NOW, entry("ade_token.create", "a"))
            .await
            .unwrap();
        let b = store
            .ade_token_create("B", &key, "cb", NOW, entry("ade_token.create", "b"))
            .await
            .unwrap();
        let settings = serde_json::json!({});
        let profile = store
            .profile_create(
                b.id,
                &russet_store::profiles::ProfileWrite {
                    name: "Default",
                    description: None,
                    settings: &settings,
                    apple_profile_uuid: "UUID-B",
                },
                "enroll-b",
                NOW,
                entry("profile.create", "p"),
            )
            .await
            .unwrap();
        let job = store
            .job_create(
                &russet_store::jobs::NewJob {
                    kind: "sync",
                    token_id: b.id,
                    profile_id: None,
                    origin: "test",
                    mode: None,
                    requested_by: "test",
                    message: None,
                },
                NOW,
                None,
            )
            .await
            .unwrap();
        assert!(
            store
                .lease_acquire("sync", "me", NOW, time::Duration::hours(1))
                .await
                .unwrap()
        );
        let progress = serde_json::json!({});
        let page = |token_id: i64, upserts, default_profile_id| SyncPage {
            token_id,
            upserts,
            removals: &[],
            new_only: false,
            default_profile_id,
            cursor: "c",
            phase: "fetch",
            job_id: job.id,
            progress: &progress,
            seen_at: NOW,
            now: NOW,
            lease: ("sync", "me"),
            lease_until: NOW + time::Duration::hours(1),
        };
        let on_a = devices(&["S1", "S2", "S3", "S4", "S5"]);
        let c = store.sync_apply_page(&page(a.id, &on_a, None)).await.unwrap();
        assert_eq!((c.added, c.updated, c.moved_in), (5, 0, 0));

        // Two pages in one transaction for B: devices moved from A and new ones.
        let (p1, p2) = (devices(&["S1", "S2", "N1"]), devices(&["S3", "N2"]));
        let mut batch = store.sync_page_begin(&page(b.id, &p1, Some(profile.id))).await.unwrap();
        batch.add(&page(b.id, &p2, Some(profile.id))).await.unwrap();
        let c = batch.commit(&progress).await.unwrap();
        assert_eq!(
            (c.added, c.updated, c.moved_in, c.default_marked),
            (2, 0, 3, 5),
            "{}",
            db.url
        );

        // Seen again: updated, nothing new to mark.
        let again = devices(&["S1", "N1", "N3"]);
        let c = store
            .sync_apply_page(&page(b.id, &again, Some(profile.id)))
            .await
            .unwrap();
        assert_eq!((c.added, c.updated, c.moved_in, c.default_marked), (1, 2, 0, 1));
        let s1 = store.device_get("S1").await.unwrap().unwrap();
        assert_eq!((s1.token_id, s1.profile_id), (b.id, Some(profile.id)));
        let s4 = store.device_get("S4").await.unwrap().unwrap();
        assert_eq!((s4.token_id, s4.profile_id), (a.id, None));

        // A move is counted once: the marker does not outlive the page that made it.
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let marked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ade_devices WHERE previous_token_id IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(marked, 0);
        pool.close().await;
        store.close().await;
    }
}
