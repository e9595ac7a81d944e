//! End users and their sign-in, on SQLite and (when configured) PostgreSQL, with an injected
//! clock: creation and its checks, sign-in answers, lockout and its end, concurrent failures,
//! and the audit entries every change writes.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use russet_core::users::{NewUserRequest, SIGN_IN_FAILED_MESSAGE, User, UserUpdate};
use russet_core::{Actor, Core, CoreError, ManualClock, Settings};
use russet_store::audit::{AuditEntry, AuditQuery};
use russet_store::crypto::{MasterKey, MasterKeySource};
use russet_store::{Store, StoreOptions};
use russet_testkit::TestDb;
use secrecy::SecretString;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00:00 UTC);
const PASSWORD: &str = "correct horse battery";

async fn core(db: &TestDb, settings: Settings) -> (Core, ManualClock) {
    let key = MasterKey::from_base64(&STANDARD.encode([9u8; 32]), MasterKeySource::Environment).unwrap();
    let store = Store::open(&StoreOptions::new(&db.url), key).await.unwrap();
    let clock = ManualClock::new(NOW);
    (Core::new(store, Arc::new(clock.clone()), settings), clock)
}

fn admin() -> Actor {
    Actor::admin_key(1, "initial")
}

fn new_user(username: &str, password: &str) -> NewUserRequest {
    NewUserRequest {
        username: username.into(),
        display_name: None,
        email: None,
        password: SecretString::from(password),
    }
}

async fn audit(core: &Core, user_id: i64) -> Vec<AuditEntry> {
    core.audit_list(AuditQuery {
        target_type: Some("user".into()),
        target_id: Some(user_id.to_string()),
        ..AuditQuery::default()
    })
    .await
    .unwrap()
}

fn actions(entries: &[AuditEntry]) -> Vec<&str> {
    entries.iter().rev().map(|e| e.action.as_str()).collect()
}

fn code(r: Result<User, CoreError>) -> (&'static str, String) {
    let e = r.expect_err("refused");
    (e.code, e.message)
}

#[tokio::test]
async fn create_refuses_duplicates_ignoring_case() {
    for db in TestDb::all("core::users::create_refuses_duplicates").await {
        let (core, _) = core(&db, Settings::default()).await;
        let req = NewUserRequest {
            username: "  Jane.Doe@example.com ".into(),
            display_name: Some(" Jane Doe ".into()),
            email: Some("jane@example.com".into()),
            password: SecretString::from(PASSWORD),
        };
        let jane = core.user_create(&admin(), &req).await.unwrap();
        assert_eq!(jane.username, "Jane.Doe@example.com", "trimmed, case kept");
        assert_eq!(jane.display_name, "Jane Doe");
        assert_eq!(jane.email.as_deref(), Some("jane@example.com"));
        assert_eq!((jane.source.as_str(), jane.status.as_str()), ("local", "active"));
        assert_eq!(jane.created_at, NOW);

        // The view (and so every API answer) never holds the password or its hash.
        let json = serde_json::to_string(&jane).unwrap();
        assert!(
            !json.contains(PASSWORD) && !json.contains("argon2") && !json.contains("hash"),
            "{json}"
        );
        // Nor does the database hold the password itself.
        assert!(
            !russet_testkit::contains(&db.dump(), PASSWORD.as_bytes()),
            "the password is stored in clear"
        );

        for dup in ["jane.doe@example.com", "JANE.DOE@EXAMPLE.COM", " Jane.Doe@Example.com"] {
            let e = core.user_create(&admin(), &new_user(dup, PASSWORD)).await.unwrap_err();
            assert_eq!(e.code, "username_taken", "{dup}: {e}");
            assert!(e.message.contains("ignoring case"), "{e}");
        }
        assert_eq!(core.user_list().await.unwrap().len(), 1);
        assert_eq!(
            core.user_get_by_username("JANE.doe@example.com").await.unwrap().id,
            jane.id
        );
        assert_eq!(core.user_get(jane.id).await.unwrap().username, jane.username);
        assert_eq!(core.user_get(999).await.unwrap_err().code, "user_not_found");
        assert_eq!(
            core.user_get_by_username("nobody").await.unwrap_err().code,
            "user_not_found"
        );

        // Listed by username, ignoring case.
        core.user_create(&admin(), &new_user("adam", PASSWORD)).await.unwrap();
        core.user_create(&admin(), &new_user("Zoe", PASSWORD)).await.unwrap();
        let names: Vec<String> = core
            .user_list()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["adam", "Jane.Doe@example.com", "Zoe"]);

        let entries = audit(&core, jane.id).await;
        assert_eq!(actions(&entries), ["user.create"]);
        assert_eq!(entries[0].actor, "admin-key:1 (initial)");
        assert!(!entries[0].details.to_string().contains(PASSWORD));
    }
}

#[tokio::test]
async fn bad_fields_are_refused_each_with_its_message() {
    for db in TestDb::all("core::users::bad_fields").await {
        let (core, _) = core(&db, Settings::default()).await;
        let req = NewUserRequest {
            username: "jane doe".into(),
            display_name: Some("  ".into()),
            email: Some("not-an-address".into()),
            password: SecretString::from("short"),
        };
        let e = core.user_create(&admin(), &req).await.unwrap_err();
        assert_eq!(e.code, "invalid_user", "{e}");
        let fields = &e.details.as_ref().unwrap()["fields"];
        assert!(fields["username"].as_str().unwrap().contains("letters"), "{fields}");
        assert!(
            fields["display_name"].as_str().unwrap().contains("1 to 128"),
            "{fields}"
        );
        assert!(
            fields["email"].as_str().unwrap().contains("name@example.com"),
            "{fields}"
        );
        assert!(fields["password"].as_str().unwrap().contains("at least 10"), "{fields}");
        assert!(
            e.message.contains("password: a password has at least 10 characters"),
            "{e}"
        );

        for (username, password, field) in [
            ("", PASSWORD, "username"),
            (&*"a".repeat(65), PASSWORD, "username"),
            ("jané", PASSWORD, "username"),
            ("a/b", PASSWORD, "username"),
            ("jane", "123456789", "password"),
            ("jane", &*"x".repeat(1025), "password"),
        ] {
            let e = core
                .user_create(&admin(), &new_user(username, password))
                .await
                .unwrap_err();
            assert_eq!(e.code, "invalid_user");
            let fields = e.details.unwrap()["fields"].as_object().unwrap().clone();
            assert_eq!(fields.keys().collect::<Vec<_>>(), [field], "{username:?}");
        }
        // The limits themselves are accepted.
        core.user_create(&admin(), &new_user(&"a".repeat(64), &"x".repeat(1024)))
            .await
            .unwrap();
        core.user_create(&admin(), &new_user("o_brien-1.x", "0123456789"))
            .await
            .unwrap();
        // Refused requests wrote nothing.
        assert_eq!(core.user_list().await.unwrap().len(), 2);
        let all = core.audit_list(AuditQuery::default()).await.unwrap();
        assert_eq!(all.iter().filter(|e| e.action == "user.create").count(), 2);

        let jane = core.user_create(&admin(), &new_user("jane", PASSWORD)).await.unwrap();
        let e = core
            .user_set_password(&admin(), jane.id, &SecretString::from("too short"))
            .await
            .unwrap_err();
        assert_eq!(e.code, "invalid_password");
        assert!(e.details.unwrap()["fields"]["password"].is_string());
        let e = core
            .user_update(
                &admin(),
                jane.id,
                &UserUpdate {
                    email: Some(Some("x@".into())),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "invalid_user");
        assert!(e.details.unwrap()["fields"]["email"].is_string());
    }
}

#[tokio::test]
async fn sign_in_right_wrong_and_unknown() {
    for db in TestDb::all("core::users::sign_in").await {
        let (core, clock) = core(&db, Settings::default()).await;
        let jane = core.user_create(&admin(), &new_user("Jane", PASSWORD)).await.unwrap();
        assert!(jane.last_sign_in_at.is_none());

        clock.advance(Duration::minutes(1));
        let me = core.user_sign_in("jane", PASSWORD).await.unwrap();
        assert_eq!(me.id, jane.id);
        assert_eq!(me.last_sign_in_at, Some(NOW + Duration::minutes(1)));
        // Usernames ignore case and surrounding spaces; passwords do not.
        assert_eq!(core.user_sign_in(" JANE ", PASSWORD).await.unwrap().id, jane.id);
        let wrong = code(core.user_sign_in("jane", &PASSWORD.to_uppercase()).await);
        assert_eq!(wrong, ("sign_in_failed", SIGN_IN_FAILED_MESSAGE.to_string()));
        assert_eq!(SIGN_IN_FAILED_MESSAGE, "the username or password is incorrect");
        assert_eq!(code(core.user_sign_in("jane", &format!("{PASSWORD} ")).await), wrong);
        assert_eq!(code(core.user_sign_in("jane", "").await), wrong);
        assert_eq!(code(core.user_sign_in("jane", &"x".repeat(5000)).await), wrong);
        // An unknown user, or a name no user can have, gets exactly the same answer.
        assert_eq!(code(core.user_sign_in("john", PASSWORD).await), wrong);
        assert_eq!(code(core.user_sign_in("no such user!", PASSWORD).await), wrong);
        assert_eq!(code(core.user_sign_in("", "").await), wrong);
        assert_eq!(core.user_get(jane.id).await.unwrap().failed_attempts, 4);
        // A success clears the count.
        core.user_sign_in("jane", PASSWORD).await.unwrap();
        assert_eq!(core.user_get(jane.id).await.unwrap().failed_attempts, 0);
        // Sign-ins that lock nothing write nothing to the audit log.
        assert_eq!(actions(&audit(&core, jane.id).await), ["user.create"]);

        // An unknown user costs a password check too (a fixed dummy hash), so the answer
        // does not tell that the user is missing by coming back early. The fastest of a few
        // tries of each, compared loosely (no hashing at all would be ~20 times faster). On
        // PostgreSQL a wrong password also waits for the commit of its count, which on a slow
        // disk outweighs the hash: there only the hashing is compared (in the unit tests).
        if db.backend != russet_testkit::Backend::Sqlite {
            continue;
        }
        let mut wrong_t = StdDuration::MAX;
        let mut unknown_t = StdDuration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let _ = core.user_sign_in("jane", "wrong password!").await;
            wrong_t = wrong_t.min(t.elapsed());
            let t = Instant::now();
            let _ = core.user_sign_in("john", "wrong password!").await;
            unknown_t = unknown_t.min(t.elapsed());
        }
        core.user_unlock(&admin(), jane.id).await.unwrap();
        assert!(
            unknown_t * 3 >= wrong_t,
            "unknown user {unknown_t:?} vs wrong password {wrong_t:?}"
        );
    }
}

#[tokio::test]
async fn five_failures_lock_for_fifteen_minutes() {
    for db in TestDb::all("core::users::lockout").await {
        let (core, clock) = core(&db, Settings::default()).await;
        let jane = core.user_create(&admin(), &new_user("jane", PASSWORD)).await.unwrap();
        for n in 1..=4 {
            assert_eq!(
                code(core.user_sign_in("jane", "wrong password").await).0,
                "sign_in_failed"
            );
            assert_eq!(core.user_get(jane.id).await.unwrap().failed_attempts, n);
        }
        // The fifth failure locks the account, says until when, and is audited.
        let e = core.user_sign_in("jane", "wrong password").await.unwrap_err();
        assert_eq!(e.code, "account_locked", "{e}");
        assert!(e.message.contains("2026-06-01T12:15:00Z"), "{e}");
        assert!(e.message.contains("in 15 minutes"), "{e}");
        assert_eq!(e.retry_after, Some(15 * 60));
        let locked = core.user_get(jane.id).await.unwrap();
        assert_eq!(locked.status, "locked");
        assert_eq!(locked.locked_until, Some(NOW + Duration::minutes(15)));
        assert_eq!(locked.failed_attempts, 5);
        let entries = audit(&core, jane.id).await;
        assert_eq!(actions(&entries), ["user.create", "user.lock"]);
        assert_eq!(entries[0].actor, "sign-in: jane");
        assert_eq!(entries[0].actor_key_id, None);
        assert_eq!(entries[0].details["locked_until"], "2026-06-01T12:15:00Z");

        // Locked: even the right password is refused, and nothing more is counted.
        clock.advance(Duration::minutes(14));
        let e = core.user_sign_in("jane", PASSWORD).await.unwrap_err();
        assert_eq!(e.code, "account_locked");
        assert!(e.message.contains("in 1 minute"), "{e}");
        assert_eq!(
            code(core.user_sign_in("jane", "wrong password").await).0,
            "account_locked"
        );
        assert_eq!(core.user_get(jane.id).await.unwrap().failed_attempts, 5);

        // Fifteen minutes after the lock it opens by itself.
        clock.advance(Duration::minutes(1));
        assert_eq!(core.user_get(jane.id).await.unwrap().status, "active");
        // A failure after the lock ran out starts counting again from one.
        assert_eq!(
            code(core.user_sign_in("jane", "wrong password").await).0,
            "sign_in_failed"
        );
        let after = core.user_get(jane.id).await.unwrap();
        assert_eq!((after.failed_attempts, after.locked_until), (1, None));
        let me = core.user_sign_in("jane", PASSWORD).await.unwrap();
        assert_eq!(me.failed_attempts, 0);
        assert_eq!(me.last_sign_in_at, Some(NOW + Duration::minutes(15)));

        // An administrator unlocks sooner.
        for _ in 0..5 {
            let _ = core.user_sign_in("jane", "wrong password").await;
        }
        assert_eq!(core.user_get(jane.id).await.unwrap().status, "locked");
        let unlocked = core.user_unlock(&admin(), jane.id).await.unwrap();
        assert_eq!((unlocked.status.as_str(), unlocked.failed_attempts), ("active", 0));
        core.user_sign_in("jane", PASSWORD).await.unwrap();
        assert_eq!(
            actions(&audit(&core, jane.id).await),
            ["user.create", "user.lock", "user.lock", "user.unlock"]
        );
        // Unlocking an account with nothing to clear changes (and audits) nothing.
        core.user_unlock(&admin(), jane.id).await.unwrap();
        assert_eq!(audit(&core, jane.id).await.len(), 4);
    }
}

#[tokio::test]
async fn the_limits_come_from_settings() {
    for db in TestDb::all("core::users::settings").await {
        let settings = Settings {
            user_lockout_attempts: 2,
            user_lockout_duration: Duration::hours(1),
            ..Settings::default()
        };
        let (core, clock) = core(&db, settings).await;
        core.user_create(&admin(), &new_user("jane", PASSWORD)).await.unwrap();
        assert_eq!(
            code(core.user_sign_in("jane", "wrong password").await).0,
            "sign_in_failed"
        );
        assert_eq!(
            code(core.user_sign_in("jane", "wrong password").await).0,
            "account_locked"
        );
        clock.advance(Duration::minutes(59));
        assert_eq!(code(core.user_sign_in("jane", PASSWORD).await).0, "account_locked");
        clock.advance(Duration::minutes(1));
        core.user_sign_in("jane", PASSWORD).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_failures_are_all_counted() {
    for db in TestDb::all("core::users::concurrent_failures").await {
        // No lock in the way: every one of the racing failures must be counted.
        let settings = Settings {
            user_lockout_attempts: 1000,
            ..Settings::default()
        };
        let (core, _) = core(&db, settings).await;
        let jane = core.user_create(&admin(), &new_user("jane", PASSWORD)).await.unwrap();
        let attempts = (0..12).map(|_| {
            let core = core.clone();
            tokio::spawn(async move { core.user_sign_in("jane", "wrong password").await })
        });
        for r in futures::future::join_all(attempts).await {
            assert_eq!(r.unwrap().unwrap_err().code, "sign_in_failed");
        }
        assert_eq!(core.user_get(jane.id).await.unwrap().failed_attempts, 12);

        // The store's count itself, raced without hashing in between: every attempt sees
        // its own number.
        let lock_until = NOW + Duration::minutes(15);
        let entry = || {
            russet_store::audit::NewAuditEntry::new(NOW, &Actor::sign_in("jane"), "user.lock", "user", "locked".into())
        };
        let counts = futures::future::join_all((0..40).map(|_| {
            let store = core.store.clone();
            let entry = entry();
            async move {
                store
                    .user_sign_in_failed(jane.id, 1000, NOW, lock_until, entry)
                    .await
                    .unwrap()
                    .unwrap()
                    .failed_attempts
            }
        }))
        .await;
        let mut counts = counts;
        counts.sort();
        assert_eq!(counts, (13..=52).collect::<Vec<i64>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_failures_lock_once() {
    for db in TestDb::all("core::users::racing_failures_lock_once").await {
        let (core, _) = core(&db, Settings::default()).await;
        let jane = core.user_create(&admin(), &new_user("jane", PASSWORD)).await.unwrap();
        let attempts = (0..8).map(|_| {
            let core = core.clone();
            tokio::spawn(async move { core.user_sign_in("jane", "wrong password").await })
        });
        let codes: Vec<&str> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap_err().code)
            .collect();
        // Each attempt was refused; at least the one that locked said so.
        assert!(
            codes.iter().all(|c| ["sign_in_failed", "account_locked"].contains(c)),
            "{codes:?}"
        );
        assert!(codes.contains(&"account_locked"), "{codes:?}");
        let user = core.user_get(jane.id).await.unwrap();
        assert_eq!(user.status, "locked");
        assert_eq!(user.locked_until, Some(NOW + Duration::minutes(15)));
        assert!(user.failed_attempts >= 5, "{}", user.failed_attempts);
        // Exactly one lock, exactly one audit entry.
        assert_eq!(actions(&audit(&core, jane.id).await), ["user.create", "user.lock"]);
    }
}

#[tokio::test]
async fn a_new_password_unlocks() {
    for db in TestDb::all("core::users::set_password").await {
        let (core, clock) = core(&db, Settings::default()).await;
        let jane = core.user_create(&admin(), &new_user("jane", PASSWORD)).await.unwrap();
        for _ in 0..5 {
            let _ = core.user_sign_in("jane", "wrong password").await;
        }
        assert_eq!(core.user_get(jane.id).await.unwrap().status, "locked");
        clock.advance(Duration::minutes(2));
        let new_password = SecretString::from("a brand new passphrase");
        let u = core.user_set_password(&admin(), jane.id, &new_password).await.unwrap();
        assert_eq!(
            (u.status.as_str(), u.failed_attempts, u.locked_until),
            ("active", 0, None)
        );
        assert_eq!(u.updated_at, NOW + Duration::minutes(2));
        assert_eq!(code(core.user_sign_in("jane", PASSWORD).await).0, "sign_in_failed");
        core.user_sign_in("jane", "a brand new passphrase").await.unwrap();
        let entries = audit(&core, jane.id).await;
        assert_eq!(actions(&entries), ["user.create", "user.lock", "user.set_password"]);
        assert_eq!(entries[0].details["was_locked"], true);
        assert!(!entries[0].details.to_string().contains("passphrase"));
        let e = core.user_set_password(&admin(), 999, &new_password).await.unwrap_err();
        assert_eq!(e.code, "user_not_found");
    }
}

#[tokio::test]
async fn disabled_users_are_refused() {
    for db in TestDb::all("core::users::disabled").await {
        let (core, _) = core(&db, Settings::default()).await;
        let jane = core.user_create(&admin(), &new_user("jane", PASSWORD)).await.unwrap();
        let disable = UserUpdate {
            disabled: Some(true),
            ..UserUpdate::default()
        };
        let u = core.user_update(&admin(), jane.id, &disable).await.unwrap();
        assert_eq!((u.status.as_str(), u.disabled), ("disabled", true));
        let e = core.user_sign_in("jane", PASSWORD).await.unwrap_err();
        assert_eq!(e.code, "account_disabled");
        assert!(e.message.contains("ask your IT administrator"), "{e}");
        // Only someone with the right password learns that the account is disabled.
        assert_eq!(
            code(core.user_sign_in("jane", "wrong password").await).0,
            "sign_in_failed"
        );
        // Disabling again changes nothing and writes nothing.
        core.user_update(&admin(), jane.id, &disable).await.unwrap();
        let enable = UserUpdate {
            disabled: Some(false),
            ..UserUpdate::default()
        };
        core.user_update(&admin(), jane.id, &enable).await.unwrap();
        core.user_sign_in("jane", PASSWORD).await.unwrap();
        let entries = audit(&core, jane.id).await;
        assert_eq!(actions(&entries), ["user.create", "user.update", "user.update"]);
        assert_eq!(entries[1].summary, "disabled user \"jane\"");
        assert_eq!(entries[0].summary, "enabled user \"jane\"");
    }
}

#[tokio::test]
async fn update_and_delete() {
    for db in TestDb::all("core::users::update_delete").await {
        let (core, _) = core(&db, Settings::default()).await;
        let req = NewUserRequest {
            email: Some("jane@example.com".into()),
            ..new_user("jane", PASSWORD)
        };
        let jane = core.user_create(&admin(), &req).await.unwrap();
        assert_eq!(jane.display_name, "jane", "the display name defaults to the username");
        let u = core
            .user_update(
                &admin(),
                jane.id,
                &UserUpdate {
                    display_name: Some("Jane Doe".into()),
                    email: Some(None),
                    disabled: None,
                },
            )
            .await
            .unwrap();
        assert_eq!((u.display_name.as_str(), u.email.as_deref()), ("Jane Doe", None));
        let u = core
            .user_update(
                &admin(),
                jane.id,
                &UserUpdate {
                    email: Some(Some(" j.doe@example.com ".into())),
                    ..UserUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(u.email.as_deref(), Some("j.doe@example.com"));
        assert_eq!(u.display_name, "Jane Doe", "what is not given stays");
        let e = core
            .user_update(&admin(), 999, &UserUpdate::default())
            .await
            .unwrap_err();
        assert_eq!(e.code, "user_not_found");

        core.user_delete(&admin(), jane.id).await.unwrap();
        assert_eq!(core.user_get(jane.id).await.unwrap_err().code, "user_not_found");
        assert_eq!(code(core.user_sign_in("jane", PASSWORD).await).0, "sign_in_failed");
        assert_eq!(
            core.user_delete(&admin(), jane.id).await.unwrap_err().code,
            "user_not_found"
        );
        let entries = audit(&core, jane.id).await;
        assert_eq!(
            actions(&entries),
            ["user.create", "user.update", "user.update", "user.delete"]
        );
        assert_eq!(
            entries[2].details,
            serde_json::json!({ "display_name": "Jane Doe", "email": null })
        );
        // The name is free again.
        core.user_create(&admin(), &new_user("JANE", PASSWORD)).await.unwrap();
    }
}
