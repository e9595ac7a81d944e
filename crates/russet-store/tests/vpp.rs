//! Apps and Books tokens, their licences, and credential health bookkeeping, on SQLite and
//! (when configured) PostgreSQL.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use russet_store::audit::{Actor, NewAuditEntry};
use russet_store::crypto::{MasterKey, MasterKeySource};
use russet_store::health::{CredentialState, NewDelivery};
use russet_store::vpp::{LicenceRow, NewVppToken, VppLocation, VppRenewal, VppSyncResult};
use russet_store::{Store, StoreError, StoreOptions};
use russet_testkit::{TestDb, contains};
use secrecy::{ExposeSecret, SecretString};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

async fn open(db: &TestDb) -> Store {
    let key = MasterKey::from_base64(&STANDARD.encode([7u8; 32]), MasterKeySource::Environment).unwrap();
    Store::open(&StoreOptions::new(&db.url), key).await.unwrap()
}

fn audit(action: &str) -> NewAuditEntry {
    NewAuditEntry::new(
        NOW,
        &Actor::admin_key(1, "initial"),
        action,
        "vpp_token",
        action.to_string(),
    )
}

fn location(uid: &str, name: &str) -> VppLocation {
    VppLocation {
        location_uid: uid.into(),
        location_name: name.into(),
        org_name: "Example Org".into(),
        country: Some("FR".into()),
        default_platform: Some("volumestore".into()),
        website_url: Some("https://business.apple.com".into()),
        mdm_id: Some("russet-1".into()),
        mdm_name: Some("Russet".into()),
    }
}

fn licence(adam: &str, pricing: &str, total: i64, assigned: i64) -> LicenceRow {
    LicenceRow {
        adam_id: adam.into(),
        product_type: "App".into(),
        platforms: "iOS,macOS".into(),
        pricing_param: pricing.into(),
        total,
        assigned,
        available: total - assigned,
        retired: 0,
        device_assignable: true,
        revocable: true,
    }
}

async fn create(store: &Store, name: &str, uid: &str, secret: &str) -> i64 {
    let loc = location(uid, name);
    let bearer = SecretString::from(secret);
    store
        .vpp_token_create(
            &NewVppToken {
                name,
                apple_id: Some("apps@example.com"),
                account_type: "business",
                location: &loc,
                bearer: &bearer,
                token_sha256: &format!("sha-{name}"),
                expires_at: NOW + Duration::days(365),
                claimed_at: Some(NOW),
                now: NOW,
                next_sync_at: NOW,
            },
            audit("vpp_token.create"),
        )
        .await
        .unwrap()
        .id
}

async fn sync_ok(store: &Store, id: i64, rows: &[LicenceRow]) {
    store
        .vpp_token_record_sync(
            id,
            &VppSyncResult {
                now: NOW,
                next_sync_at: NOW + Duration::hours(12),
                error: None,
                apple_state: Some(("ok", None)),
                location: None,
                expires_at: None,
                licences: Some(rows),
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn tokens_renew_in_place_and_apps_appear_once() {
    for db in TestDb::all("store::vpp_tokens_renew_in_place").await {
        let store = open(&db).await;
        let paris = create(&store, "Paris", "1001", "secret-paris-1").await;
        let lyon = create(&store, "Lyon", "1002", "secret-lyon-1").await;
        // The bearer is sealed: not in the database file in clear, and read back intact.
        assert_eq!(
            store.vpp_token_bearer(paris).await.unwrap().unwrap().expose_secret(),
            "secret-paris-1"
        );
        if db.pg.is_none() {
            assert!(!contains(&db.dump(), b"secret-paris-1"), "the bearer is stored sealed");
        }
        // One location, one token: a second row for 1001 is refused by the schema.
        let bearer = SecretString::from("other");
        let loc = location("1001", "Paris again");
        let dup = store
            .vpp_token_create(
                &NewVppToken {
                    name: "Paris 2",
                    apple_id: None,
                    account_type: "business",
                    location: &loc,
                    bearer: &bearer,
                    token_sha256: "x",
                    expires_at: NOW,
                    claimed_at: None,
                    now: NOW,
                    next_sync_at: NOW,
                },
                audit("vpp_token.create"),
            )
            .await;
        assert!(matches!(dup, Err(StoreError::Constraint { .. })), "{dup:?}");

        sync_ok(
            &store,
            paris,
            &[licence("111", "STDQ", 100, 10), licence("222", "STDQ", 5, 5)],
        )
        .await;
        sync_ok(
            &store,
            lyon,
            &[licence("111", "STDQ", 50, 1), licence("111", "PLUS", 2, 0)],
        )
        .await;
        let assets = store.vpp_assets(None).await.unwrap();
        assert_eq!(assets.len(), 2, "app 111 appears once for two tokens: {assets:?}");
        let app = &assets[0];
        assert_eq!(app.adam_id, "111");
        assert_eq!(app.licences.len(), 3, "licences per token and pricing");
        assert_eq!(store.vpp_assets(Some(lyon)).await.unwrap().len(), 1);

        // Renewal: same id, licences kept, new expiry and secret.
        let before = store.vpp_token_get(paris).await.unwrap().unwrap();
        let new_bearer = SecretString::from("secret-paris-2");
        let renewed = store
            .vpp_token_renew(
                paris,
                before.version,
                &VppRenewal {
                    apple_id: None,
                    location: &location("1001", "Paris"),
                    bearer: &new_bearer,
                    token_sha256: "sha-2",
                    expires_at: NOW + Duration::days(730),
                    claimed_at: None,
                    now: NOW + Duration::days(1),
                    next_sync_at: NOW + Duration::days(1),
                },
                audit("vpp_token.renew"),
            )
            .await
            .unwrap();
        assert_eq!(renewed.id, paris);
        assert_eq!(renewed.asset_count, 2);
        assert_eq!(renewed.licences_total, 105);
        assert_eq!(renewed.expires_at, NOW + Duration::days(730));
        assert_eq!(
            renewed.apple_id.as_deref(),
            Some("apps@example.com"),
            "kept when not given"
        );
        assert_eq!(
            store.vpp_token_bearer(paris).await.unwrap().unwrap().expose_secret(),
            "secret-paris-2"
        );
        // A stale version is refused.
        let stale = store
            .vpp_token_renew(
                paris,
                before.version,
                &VppRenewal {
                    apple_id: None,
                    location: &location("1001", "Paris"),
                    bearer: &new_bearer,
                    token_sha256: "sha-3",
                    expires_at: NOW,
                    claimed_at: None,
                    now: NOW,
                    next_sync_at: NOW,
                },
                audit("vpp_token.renew"),
            )
            .await;
        assert!(matches!(stale, Err(StoreError::Concurrent)), "{stale:?}");

        // A failed sync keeps the licences and records the error and Apple's verdict.
        let failed = store
            .vpp_token_record_sync(
                paris,
                &VppSyncResult {
                    now: NOW + Duration::days(2),
                    next_sync_at: NOW + Duration::days(3),
                    error: Some("revoked"),
                    apple_state: Some(("revoked", Some("revoked"))),
                    location: None,
                    expires_at: None,
                    licences: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(failed.apple_state, "revoked");
        assert_eq!(failed.last_sync_status.as_deref(), Some("failed"));
        assert_eq!(failed.last_success_at, Some(NOW));
        assert_eq!(failed.asset_count, 2);

        // Delete: 222 goes with Paris, 111 stays with Lyon.
        let impact = store.vpp_token_delete_impact(paris).await.unwrap();
        assert_eq!(impact.assets_only_here, vec!["222".to_string()]);
        assert_eq!(impact.assets_shared, 1);
        assert_eq!((impact.licences_total, impact.licences_assigned), (105, 15));
        let current = store.vpp_token_get(paris).await.unwrap().unwrap();
        store
            .vpp_token_delete(paris, current.version, audit("vpp_token.delete"))
            .await
            .unwrap();
        let assets = store.vpp_assets(None).await.unwrap();
        assert_eq!(
            assets.iter().map(|a| a.adam_id.as_str()).collect::<Vec<_>>(),
            vec!["111"]
        );
        assert!(store.vpp_token_get(paris).await.unwrap().is_none());
        assert!(store.vpp_token_find_by_location("1002").await.unwrap().is_some());
        assert!(store.vpp_token_find_by_name("  LYON ").await.unwrap().is_some());
    }
}

fn state(key: &str, status: &str, expires: Option<OffsetDateTime>, at: OffsetDateTime) -> CredentialState {
    CredentialState {
        key: key.into(),
        kind: "vpp_token".into(),
        name: "Paris".into(),
        status: status.into(),
        severity: if status == "ok" { "ok" } else { "warning" }.into(),
        expires_at: expires,
        changed_at: at,
        checked_at: at,
    }
}

#[tokio::test]
async fn a_status_change_is_recorded_once_with_its_notification() {
    for db in TestDb::all("store::credential_state_change_once").await {
        let store = open(&db).await;
        let exp = Some(NOW + Duration::days(40));
        let first = state("vpp_token:1", "ok", exp, NOW);
        assert!(store.credential_state_change(None, &first, None).await.unwrap());
        assert!(
            !store.credential_state_change(None, &first, None).await.unwrap(),
            "a second first sighting loses"
        );
        let recorded = store.credential_states().await.unwrap();
        assert_eq!(recorded.len(), 1);
        let warn = state("vpp_token:1", "warning", exp, NOW + Duration::days(11));
        let delivery = NewDelivery {
            event_id: "e-1",
            event: "credential.status_changed",
            payload: "{\"event\":\"credential.status_changed\"}",
        };
        // Two processes read the same old state; only one records the change.
        assert!(
            store
                .credential_state_change(Some(&recorded[0]), &warn, Some(&delivery))
                .await
                .unwrap()
        );
        let again = NewDelivery {
            event_id: "e-2",
            ..delivery
        };
        assert!(
            !store
                .credential_state_change(Some(&recorded[0]), &warn, Some(&again))
                .await
                .unwrap()
        );
        let deliveries = store.deliveries_list(10).await.unwrap();
        assert_eq!(deliveries.len(), 1, "one notification per crossing");
        assert_eq!(deliveries[0].status, "pending");

        // Claimed by one process at a time; retried later; delivered.
        let t = NOW + Duration::days(11);
        let claimed = store
            .deliveries_claim_due(t, t + Duration::minutes(2), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(
            store
                .deliveries_claim_due(t, t + Duration::minutes(2), 10)
                .await
                .unwrap()
                .is_empty()
        );
        store
            .delivery_attempted(
                claimed[0].id,
                t,
                false,
                Some(500),
                Some("HTTP 500"),
                Some(t + Duration::seconds(30)),
            )
            .await
            .unwrap();
        assert!(
            store
                .deliveries_claim_due(t, t + Duration::minutes(2), 10)
                .await
                .unwrap()
                .is_empty(),
            "not yet due"
        );
        let later = t + Duration::seconds(30);
        let retried = store
            .deliveries_claim_due(later, later + Duration::minutes(2), 10)
            .await
            .unwrap();
        assert_eq!(retried.len(), 1);
        store
            .delivery_attempted(retried[0].id, later, true, Some(204), None, None)
            .await
            .unwrap();
        let d = &store.deliveries_list(10).await.unwrap()[0];
        assert_eq!(
            (d.status.as_str(), d.attempts, d.last_status_code),
            ("delivered", 2, Some(204))
        );
        assert_eq!(d.delivered_at, Some(later));

        // Deleted credentials are forgotten.
        assert_eq!(store.credential_states_retain(&[]).await.unwrap(), 1);
        assert!(store.credential_states().await.unwrap().is_empty());
    }
}
