//! The MDM core's storage against SQLite and (when configured) PostgreSQL: the CA, one-time
//! challenges, certificate pins, enrollments and the command queue's NotNow rules.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use russet_store::audit::{Actor, NewAuditEntry};
use russet_store::crypto::{MasterKey, MasterKeySource};
use russet_store::mdm::{
    AuthenticateRecord, CertRecord, ChallengeRefusal, InventoryFields, NewCommand, ReportRecord, TokenUpdateRecord,
};
use russet_store::{Store, StoreError, StoreOptions};
use russet_testkit::TestDb;
use secrecy::{ExposeSecret, SecretString};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00:00 UTC);

async fn open(db: &TestDb) -> Store {
    let key = MasterKey::from_base64(&STANDARD.encode([7u8; 32]), MasterKeySource::Environment).unwrap();
    Store::open(&StoreOptions::new(&db.url), key).await.unwrap()
}

fn cert(sha: &str, serial: &str) -> CertRecord {
    CertRecord {
        sha256: sha.into(),
        serial: serial.into(),
        subject: "CN=device".into(),
        not_before: NOW,
        not_after: NOW + Duration::days(365),
        issued_at: NOW,
        challenge_id: None,
        renewed_from: None,
        enrollment_id: None,
    }
}

fn authenticate(udid: &str) -> AuthenticateRecord {
    AuthenticateRecord {
        id: udid.into(),
        kind: "Device".into(),
        udid: Some(udid.into()),
        serial_number: Some(format!("SER{udid}")),
        topic: "com.apple.mgmt.External.x".into(),
        ..Default::default()
    }
}

fn token_update(udid: &str) -> TokenUpdateRecord {
    TokenUpdateRecord {
        id: udid.into(),
        device_id: udid.into(),
        kind: "Device".into(),
        udid: Some(udid.into()),
        topic: "com.apple.mgmt.External.x".into(),
        push_token: "00aa11bb".into(),
        push_magic: format!("magic-{udid}"),
        unlock_token: Some(b"unlock".to_vec()),
        ..Default::default()
    }
}

fn audit() -> NewAuditEntry {
    NewAuditEntry::new(NOW, &Actor::system(), "command.enqueue", "command", "queued".into())
}

async fn enqueue(store: &Store, uuid: &str, targets: &[&str]) {
    let targets: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
    store
        .mdm_enqueue(
            &NewCommand {
                uuid,
                request_type: "DeviceInformation",
                body: format!("<plist>{uuid}</plist>").as_bytes(),
                created_by: "test",
            },
            &targets,
            NOW,
            audit(),
        )
        .await
        .unwrap();
}

async fn connect(store: &Store, id: &str, status: &str, uuid: Option<&str>) -> Option<String> {
    store
        .mdm_connect(
            &ReportRecord {
                enrollment_id: id,
                status,
                command_uuid: uuid,
                raw: b"<plist/>",
                error_chain: None,
                inventory: None,
            },
            NOW,
        )
        .await
        .unwrap()
        .next
        .map(|(u, _)| u)
}

#[tokio::test]
async fn ca_is_created_once_and_its_key_is_sealed() {
    for db in TestDb::all("mdm::ca").await {
        let store = open(&db).await;
        assert!(store.mdm_ca_get().await.unwrap().is_none());
        let (pem, key) = store
            .mdm_ca_create("CERT-A", &SecretString::from("KEY-A"), NOW)
            .await
            .unwrap();
        assert_eq!((pem.as_str(), key.expose_secret()), ("CERT-A", "KEY-A"));
        // A second process losing the race gets the first CA.
        let (pem, key) = store
            .mdm_ca_create("CERT-B", &SecretString::from("KEY-B"), NOW)
            .await
            .unwrap();
        assert_eq!((pem.as_str(), key.expose_secret()), ("CERT-A", "KEY-A"));
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let sealed: Vec<u8> = sqlx::query_scalar("SELECT private_key_enc FROM mdm_ca")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"KEY-A"), "sealed at rest");
    }
}

#[tokio::test]
async fn challenges_are_single_use_and_expire() {
    for db in TestDb::all("mdm::challenges").await {
        let store = open(&db).await;
        let mut links = Vec::new();
        for single in [false, true] {
            let link = store
                .enrollment_link_create(
                    "L",
                    &format!("hash-{single}"),
                    single,
                    NOW + Duration::days(1),
                    "t",
                    NOW,
                    audit(),
                )
                .await
                .unwrap();
            links.push(link.id.to_string());
        }
        let (many, once) = (links[0].clone(), links[1].clone());
        store
            .scep_challenge_create("h1", "enrollment_link", Some(&many), NOW, NOW + Duration::hours(1))
            .await
            .unwrap();
        store
            .scep_challenge_create("h2", "ade", None, NOW, NOW + Duration::hours(1))
            .await
            .unwrap();
        let used = store
            .scep_issue_with_challenge("h1", &cert("c1", "01"), NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (used.purpose.as_str(), used.reference.as_deref()),
            ("enrollment_link", Some(many.as_str()))
        );
        let issued = store.mdm_certificate_get("c1").await.unwrap().unwrap();
        assert_eq!(issued.challenge_id, Some(used.id));
        assert_eq!(
            store
                .scep_issue_with_challenge("h1", &cert("c2", "02"), NOW)
                .await
                .unwrap(),
            Err(ChallengeRefusal::Used)
        );
        assert_eq!(
            store
                .scep_issue_with_challenge("nope", &cert("c3", "03"), NOW)
                .await
                .unwrap(),
            Err(ChallengeRefusal::Unknown)
        );
        assert_eq!(
            store
                .scep_issue_with_challenge("h2", &cert("c4", "04"), NOW + Duration::hours(2))
                .await
                .unwrap(),
            Err(ChallengeRefusal::Expired)
        );
        // A single-use link: the first device's challenge works, a second device's is refused
        // even though its own challenge is fresh.
        for h in ["s1", "s2"] {
            store
                .scep_challenge_create(h, "enrollment_link", Some(&once), NOW, NOW + Duration::hours(1))
                .await
                .unwrap();
        }
        assert!(
            store
                .scep_issue_with_challenge("s1", &cert("c5", "05"), NOW)
                .await
                .unwrap()
                .is_ok()
        );
        assert_eq!(
            store
                .scep_issue_with_challenge("s2", &cert("c6", "06"), NOW)
                .await
                .unwrap(),
            Err(ChallengeRefusal::LinkSpent)
        );
        let spent = store.enrollment_link_get(once.parse().unwrap()).await.unwrap().unwrap();
        assert_eq!((spent.enrollments, spent.used_at), (1, Some(NOW)));
        // Refused challenges recorded no certificate.
        for sha in ["c2", "c3", "c4", "c6"] {
            assert!(store.mdm_certificate_get(sha).await.unwrap().is_none());
        }
    }
}

#[tokio::test]
async fn certificates_pin_to_one_device() {
    for db in TestDb::all("mdm::pins").await {
        let store = open(&db).await;
        store.mdm_certificate_record(&cert("c1", "01")).await.unwrap();
        assert_eq!(
            store.mdm_certificate_pin("c1", "UDID-A", NOW).await.unwrap().as_deref(),
            Some("UDID-A")
        );
        // Another device cannot take it over; the pin stays.
        assert_eq!(
            store.mdm_certificate_pin("c1", "UDID-B", NOW).await.unwrap().as_deref(),
            Some("UDID-A")
        );
        assert_eq!(store.mdm_certificate_pin("unknown", "UDID-B", NOW).await.unwrap(), None);
        // The same serial twice is a constraint error.
        assert!(matches!(
            store.mdm_certificate_record(&cert("c9", "01")).await,
            Err(StoreError::Constraint { .. })
        ));
    }
}

#[tokio::test]
async fn enrollment_lifecycle() {
    for db in TestDb::all("mdm::enrollment").await {
        let store = open(&db).await;
        // No TokenUpdate before Authenticate.
        assert!(matches!(
            store.mdm_token_update(&token_update("A"), NOW).await,
            Err(StoreError::Constraint { .. })
        ));
        store.mdm_authenticate(&authenticate("A"), NOW).await.unwrap();
        let e = store.mdm_enrollment_get("A").await.unwrap().unwrap();
        assert!(!e.enabled);
        assert_eq!(e.serial_number.as_deref(), Some("SERA"));
        assert!(
            store.mdm_token_update(&token_update("A"), NOW).await.unwrap(),
            "first TokenUpdate"
        );
        assert!(
            !store.mdm_token_update(&token_update("A"), NOW).await.unwrap(),
            "a later one"
        );
        let e = store.mdm_enrollment_get("A").await.unwrap().unwrap();
        assert!(e.enabled && e.has_unlock_token);
        assert_eq!(e.token_update_count, 2);
        assert_eq!(e.enrolled_at, Some(NOW));
        assert_eq!(e.push_magic.as_deref(), Some("magic-A"));
        // A user channel appears with its first TokenUpdate.
        let user = TokenUpdateRecord {
            id: "A:USER1".into(),
            kind: "User".into(),
            user_id: Some("USER1".into()),
            push_magic: "user-magic".into(),
            ..token_update("A")
        };
        store.mdm_token_update(&user, NOW).await.unwrap();
        assert_eq!(
            store.mdm_enrollment_get("A:USER1").await.unwrap().unwrap().device_id,
            "A"
        );
        // Bootstrap token: sealed, read back, cleared by a new Authenticate.
        assert!(
            store
                .mdm_set_bootstrap_token("A", Some(b"bootstrap"), NOW)
                .await
                .unwrap()
        );
        assert_eq!(
            store.mdm_bootstrap_token("A").await.unwrap().as_deref(),
            Some(&b"bootstrap"[..])
        );
        enqueue(&store, "cmd-1", &["A", "A:USER1"]).await;
        let cancelled = store.mdm_authenticate(&authenticate("A"), NOW).await.unwrap();
        assert_eq!(
            cancelled, 2,
            "re-enrollment cancels the old queue, device and user channel"
        );
        assert_eq!(store.mdm_bootstrap_token("A").await.unwrap(), None);
        let e = store.mdm_enrollment_get("A").await.unwrap().unwrap();
        assert!(!e.enabled && e.pending_commands == 0);
        assert!(!store.mdm_enrollment_get("A:USER1").await.unwrap().unwrap().enabled);
        // Targets: only enabled device channels, by UDID or serial.
        store.mdm_token_update(&token_update("A"), NOW).await.unwrap();
        let (found, missing) = store
            .mdm_resolve_targets(&["A".into(), "ghost".into()], &["SERA".into()])
            .await
            .unwrap();
        assert_eq!((found, missing), (vec!["A".to_string()], vec!["ghost".to_string()]));
        assert!(store.mdm_checkout("A", NOW).await.unwrap());
        let e = store.mdm_enrollment_get("A").await.unwrap().unwrap();
        assert!(!e.enabled && e.checked_out_at == Some(NOW));
        assert!(
            store.mdm_push_targets(&["A".into()]).await.unwrap().is_empty(),
            "no pushes after CheckOut"
        );
    }
}

#[tokio::test]
async fn queue_follows_apples_not_now_rules() {
    for db in TestDb::all("mdm::queue").await {
        let store = open(&db).await;
        store.mdm_authenticate(&authenticate("A"), NOW).await.unwrap();
        store.mdm_token_update(&token_update("A"), NOW).await.unwrap();
        assert_eq!(connect(&store, "A", "Idle", None).await, None, "empty queue");
        enqueue(&store, "c1", &["A"]).await;
        enqueue(&store, "c2", &["A"]).await;
        enqueue(&store, "c3", &["A"]).await;
        // Oldest first.
        assert_eq!(connect(&store, "A", "Idle", None).await.as_deref(), Some("c1"));
        // NotNow on c1: only never-sent commands on this connection.
        assert_eq!(connect(&store, "A", "NotNow", Some("c1")).await.as_deref(), Some("c2"));
        assert_eq!(connect(&store, "A", "NotNow", Some("c2")).await.as_deref(), Some("c3"));
        // NotNow again, and nothing was never sent: the device goes quiet.
        assert_eq!(connect(&store, "A", "NotNow", Some("c3")).await, None);
        // The next connection that does not end in NotNow gets the NotNow'd commands back, in order.
        assert_eq!(connect(&store, "A", "Idle", None).await.as_deref(), Some("c1"));
        assert_eq!(
            connect(&store, "A", "Acknowledged", Some("c1")).await.as_deref(),
            Some("c2")
        );
        let out = store
            .mdm_connect(
                &ReportRecord {
                    enrollment_id: "A",
                    status: "Error",
                    command_uuid: Some("c2"),
                    raw: b"<plist>error</plist>",
                    error_chain: Some(r#"[{"ErrorCode":12021}]"#),
                    inventory: None,
                },
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(out.next.as_ref().map(|n| n.0.as_str()), Some("c3"));
        assert_eq!(out.closed_request_type.as_deref(), Some("DeviceInformation"));
        // Acknowledged twice (Apple allows repeats) and unknown uuids are harmless.
        assert_eq!(connect(&store, "A", "Acknowledged", Some("c3")).await, None);
        let again = store
            .mdm_connect(
                &ReportRecord {
                    enrollment_id: "A",
                    status: "Acknowledged",
                    command_uuid: Some("c3"),
                    raw: b"",
                    error_chain: None,
                    inventory: None,
                },
                NOW,
            )
            .await
            .unwrap();
        assert!(again.unknown_command && again.next.is_none());
        let c1 = store.mdm_command_get("c1").await.unwrap().unwrap();
        assert_eq!(c1.entries.len(), 1);
        assert_eq!(c1.entries[0].status, "Acknowledged");
        assert_eq!(c1.entries[0].not_now_count, 1);
        let c2 = store.mdm_command_get("c2").await.unwrap().unwrap();
        assert_eq!(c2.entries[0].status, "Error");
        assert_eq!(c2.entries[0].error_chain.as_deref(), Some(r#"[{"ErrorCode":12021}]"#));
        assert_eq!(c2.entries[0].result.as_deref(), Some(&b"<plist>error</plist>"[..]));
        assert!(store.mdm_command_get("nope").await.unwrap().is_none());
        // A command for many enrollments, larger than one statement's rows.
        let many: Vec<String> = (0..450).map(|i| format!("D{i:03}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        enqueue(&store, "bulk", &refs).await;
        let bulk = store.mdm_command_get("bulk").await.unwrap().unwrap();
        assert_eq!((bulk.target_count, bulk.entries.len()), (450, 450));
        assert!(bulk.entries.iter().all(|e| e.status == "Queued"));
    }
}

/// A DeviceInformation answer fills the inventory in the connect's own transaction; the same
/// keys in the answer to another command, or in an Error, change nothing.
#[tokio::test]
async fn device_information_answers_fill_the_inventory() {
    for db in TestDb::all("mdm::inventory").await {
        let store = open(&db).await;
        store.mdm_authenticate(&authenticate("A"), NOW).await.unwrap();
        store.mdm_token_update(&token_update("A"), NOW).await.unwrap();
        enqueue(&store, "d1", &["A"]).await;
        enqueue(&store, "d2", &["A"]).await;
        store
            .mdm_enqueue(
                &NewCommand {
                    uuid: "s1",
                    request_type: "SecurityInfo",
                    body: b"<plist>s1</plist>",
                    created_by: "test",
                },
                &["A".to_string()],
                NOW,
                audit(),
            )
            .await
            .unwrap();
        let report = |status: &'static str, uuid: &'static str, name: &'static str| {
            let fields = InventoryFields {
                device_name: Some(name.to_string()),
                os_version: Some("18.1".into()),
                ..InventoryFields::default()
            };
            let json = format!(r#"{{"DeviceName":"{name}"}}"#);
            (status, uuid, json, fields)
        };
        assert_eq!(connect(&store, "A", "Idle", None).await.as_deref(), Some("d1"));
        for (status, uuid, json, fields) in [
            report("Acknowledged", "d1", "Kim's iPad"),
            report("Error", "d2", "Not from an error"),
            report("Acknowledged", "s1", "Not from SecurityInfo"),
        ] {
            store
                .mdm_connect(
                    &ReportRecord {
                        enrollment_id: "A",
                        status,
                        command_uuid: Some(uuid),
                        raw: b"<plist/>",
                        error_chain: None,
                        inventory: Some((&json, &fields)),
                    },
                    NOW,
                )
                .await
                .unwrap();
        }
        let e = store.mdm_enrollment_get("A").await.unwrap().unwrap();
        assert_eq!(e.device_name.as_deref(), Some("Kim's iPad"));
        assert_eq!(e.os_version.as_deref(), Some("18.1"));
        assert_eq!(e.inventory.as_deref(), Some(r#"{"DeviceName":"Kim's iPad"}"#));
        assert_eq!(e.inventory_at, Some(NOW));
    }
}

/// Many devices connecting at once are written together; each gets its own next command,
/// reports close their own command, and every device is marked seen.
#[tokio::test]
async fn concurrent_connects_are_written_together() {
    for db in TestDb::all("mdm::batch").await {
        let store = open(&db).await;
        let ids: Vec<String> = (0..300).map(|i| format!("D{i:03}")).collect();
        for id in &ids {
            store.mdm_authenticate(&authenticate(id), NOW).await.unwrap();
            store.mdm_token_update(&token_update(id), NOW).await.unwrap();
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        enqueue(&store, "b1", &refs).await;
        enqueue(&store, "b2", &refs[..150]).await;
        let idle = ids.iter().map(|id| connect(&store, id, "Idle", None));
        let got = futures::future::join_all(idle).await;
        assert!(got.iter().all(|g| g.as_deref() == Some("b1")), "{got:?}");
        let acks = ids.iter().map(|id| connect(&store, id, "Acknowledged", Some("b1")));
        let got = futures::future::join_all(acks).await;
        for (i, g) in got.iter().enumerate() {
            let want = if i < 150 { Some("b2") } else { None };
            assert_eq!(g.as_deref(), want, "device {i}");
        }
        let b1 = store.mdm_command_get("b1").await.unwrap().unwrap();
        assert_eq!(b1.entries.len(), 300);
        assert!(b1.entries.iter().all(|e| e.status == "Acknowledged"));
        let b2 = store.mdm_command_get("b2").await.unwrap().unwrap();
        assert!(
            b2.entries.iter().all(|e| e.sent_at == Some(NOW) && e.status == "Sent"),
            "{:?}",
            b2.entries[0]
        );
        for id in &ids {
            let e = store.mdm_enrollment_get(id).await.unwrap().unwrap();
            assert_eq!(e.last_seen_at, Some(NOW), "{id}");
        }
    }
}

/// The SCEP RA is sealed, and a replacement only lands if it replaces the RA in place: two
/// processes replacing the same RA end up agreeing on the first one written.
#[tokio::test]
async fn the_scep_ra_is_replaced_once() {
    for db in TestDb::all("mdm::ra").await {
        let store = open(&db).await;
        assert!(store.mdm_ra_get().await.unwrap().is_none(), "no CA yet");
        store
            .mdm_ca_create("CA PEM", &SecretString::from("CA KEY"), NOW)
            .await
            .unwrap();
        assert!(store.mdm_ra_get().await.unwrap().is_none(), "no RA yet");
        let (pem, key) = store
            .mdm_ra_replace(None, "RA 1", &SecretString::from("RA KEY 1"))
            .await
            .unwrap();
        assert_eq!((pem.as_str(), key.expose_secret()), ("RA 1", "RA KEY 1"));
        // A second process that also saw no RA loses: the first one stays.
        let (pem, _) = store
            .mdm_ra_replace(None, "RA 1b", &SecretString::from("RA KEY 1b"))
            .await
            .unwrap();
        assert_eq!(pem, "RA 1");
        let (pem, key) = store
            .mdm_ra_replace(Some("RA 1"), "RA 2", &SecretString::from("RA KEY 2"))
            .await
            .unwrap();
        assert_eq!((pem.as_str(), key.expose_secret()), ("RA 2", "RA KEY 2"));
        let (pem, _) = store
            .mdm_ra_replace(Some("RA 1"), "RA 2b", &SecretString::from("RA KEY 2b"))
            .await
            .unwrap();
        assert_eq!(pem, "RA 2");
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let sealed: Vec<u8> = sqlx::query_scalar("SELECT ra_private_key_enc FROM mdm_ca")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"RA KEY 2"), "the RA key is sealed");
    }
}

/// A device waiting in Setup Assistant: DeviceConfigured (queued by the system) goes after the
/// first commands; acknowledged, it marks the device configured. If one of the first commands
/// fails, the DeviceConfigured is withdrawn so the device stays (and shows as stuck).
#[tokio::test]
async fn device_configured_follows_the_first_commands_or_is_withdrawn_on_error() {
    for db in TestDb::all("store::device_configured").await {
        let store = open(&db).await;
        for udid in ["OK-1", "ERR-1"] {
            store.mdm_authenticate(&authenticate(udid), NOW).await.unwrap();
            let mut t = token_update(udid);
            t.awaiting_configuration = true;
            store.mdm_token_update(&t, NOW).await.unwrap();
        }
        for (uuid, request_type) in [("SETTINGS", "Settings"), ("CONFIGURED", "DeviceConfigured")] {
            store
                .mdm_enqueue(
                    &NewCommand {
                        uuid,
                        request_type,
                        body: format!("<plist>{uuid}</plist>").as_bytes(),
                        created_by: "system",
                    },
                    &["OK-1".to_string(), "ERR-1".to_string()],
                    NOW,
                    audit(),
                )
                .await
                .unwrap();
        }

        // Acknowledged first command, then DeviceConfigured: configured.
        assert_eq!(connect(&store, "OK-1", "Idle", None).await.as_deref(), Some("SETTINGS"));
        assert_eq!(
            connect(&store, "OK-1", "Acknowledged", Some("SETTINGS"))
                .await
                .as_deref(),
            Some("CONFIGURED")
        );
        assert_eq!(connect(&store, "OK-1", "Acknowledged", Some("CONFIGURED")).await, None);
        let e = store.mdm_enrollment_get("OK-1").await.unwrap().unwrap();
        assert!(!e.awaiting_configuration && e.configured_at.is_some());
        assert_eq!(e.configured_by.as_deref(), Some("DeviceConfigured"));

        // The first command fails: nothing more is sent, the device still waits.
        assert_eq!(
            connect(&store, "ERR-1", "Idle", None).await.as_deref(),
            Some("SETTINGS")
        );
        assert_eq!(connect(&store, "ERR-1", "Error", Some("SETTINGS")).await, None);
        let e = store.mdm_enrollment_get("ERR-1").await.unwrap().unwrap();
        assert!(e.awaiting_configuration && e.configured_at.is_none());
        assert_eq!(e.pending_commands, 0);
    }
}
