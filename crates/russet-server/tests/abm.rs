//! The Apple Business Manager connection end to end over real HTTP: Russet against applesim
//! (Apple's side), on SQLite and (when configured) PostgreSQL. Device sync, faults, cursors,
//! interruptions, leases, profiles and assignment with throttling, devices.

mod common;

use std::time::Duration as StdDuration;

use applesim::{DeviceChange, Endpoint, Fault, FaultKind, RetryAfter, ThrottlePolicy};
use common::*;
use reqwest::{Method, StatusCode};
use russet_testkit::TestDb;
use serde_json::{Value, json};
use time::Duration;

fn small_pages() -> Options {
    Options {
        sync_enabled: false,
        page_size: 100,
    }
}

#[tokio::test]
async fn upload_reads_the_account_and_full_then_delta_sync_match_abm() {
    for s in servers("abm::full_then_delta", small_pages()).await {
        let (id, server) = s.connect("Head office").await;
        let t = s.token(id).await;
        assert_eq!(t["abm"]["server_name"], "Russet Head office");
        assert_eq!(t["abm"]["org_name"], "Example Org");
        assert_eq!(t["abm"]["org_type"], "org");
        assert!(t["abm"]["server_uuid"].as_str().is_some_and(|u| !u.is_empty()));

        // A full fetch over many pages (100 per page).
        let serials = s.abm_devices(server, 1234);
        let job = s.sync(id, false).await;
        assert_eq!(job.status, "succeeded", "{job:?}");
        assert_eq!(job.mode.as_deref(), Some("full"), "the first sync fetches everything");
        assert_eq!(job.progress["added"], 1234);
        assert!(job.progress["pages"].as_i64().unwrap() >= 13);
        s.assert_matches_abm(id, server).await;
        let t = s.token(id).await;
        assert_eq!(
            (t["device_count"].as_i64(), t["sync"]["last_result"].as_str()),
            (Some(1234), Some("succeeded"))
        );
        assert!(t["sync"]["next_sync_at"].as_str().is_some());

        // ABM changes: more devices, modified ones, released ones, and ones moved to another server.
        let more = s.abm_devices(server, 150);
        s.sim
            .modify_devices(
                &serials[..20],
                DeviceChange {
                    asset_tag: Some("TAG-1".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        s.sim.release_devices(&serials[20..50]).unwrap();
        let other = s.sim.create_mdm_server(s.org, "Another MDM");
        s.sim.assign_devices(other, &serials[50..60]).unwrap();
        let job = s.sync(id, false).await;
        assert_eq!((job.status.as_str(), job.mode.as_deref()), ("succeeded", Some("delta")));
        assert_eq!(job.progress["added"], 150);
        assert_eq!(job.progress["updated"], 20, "{:?}", job.progress);
        assert_eq!(job.progress["removed"], 40);
        s.assert_matches_abm(id, server).await;
        let all = s.devices(id, true).await;
        assert_eq!(all[&serials[0]]["asset_tag"], "TAG-1");
        assert_eq!(
            all[&serials[25]]["removed"], true,
            "released devices are kept, marked removed"
        );
        assert!(all.contains_key(&more[0]));
        let t = s.token(id).await;
        assert_eq!(
            (t["device_count"].as_i64(), t["removed_device_count"].as_i64()),
            (Some(1234 + 150 - 40), Some(40))
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn a_device_moved_to_another_token_follows_it() {
    let s = TestServer::start(TestDb::sqlite(), small_pages()).await;
    let (a, server_a) = s.connect("A").await;
    let (b, server_b) = s.connect("B").await;
    let serials = s.abm_devices(server_a, 30);
    s.sync(a, false).await;
    // Moved in ABM, reported to B as "modified" (Apple's reassignment oddity): counts as added.
    s.sim.set_move_style(applesim::MoveStyle::Modified);
    s.sim.assign_devices(server_b, &serials[..10]).unwrap();
    let job = s.sync(b, false).await;
    assert_eq!(job.progress["moved_in"], 10, "{:?}", job.progress);
    s.sync(a, false).await;
    s.assert_matches_abm(a, server_a).await;
    s.assert_matches_abm(b, server_b).await;
    let d = s
        .json(
            s.req(Method::GET, &format!("/api/v1/devices/{}", serials[0])),
            StatusCode::OK,
        )
        .await;
    assert_eq!(d["device"]["token_id"], b);
    assert_eq!(
        d["device"]["removed"], false,
        "A's later 'deleted' does not remove a device that now belongs to B"
    );
    s.stop().await;
}

#[tokio::test]
async fn faults_are_recovered_from_without_losing_or_duplicating_devices() {
    for s in servers("abm::faults", small_pages()).await {
        let (id, server) = s.connect("Faulty").await;
        s.abm_devices(server, 700);
        // Apple fails in every way it can during the full fetch.
        s.sim.push_faults(
            Endpoint::FetchDevices,
            vec![
                Fault::new(1, FaultKind::Pass),
                Fault::new(
                    1,
                    FaultKind::ServiceUnavailable {
                        retry_after: Some(RetryAfter::Seconds(1)),
                    },
                ),
                Fault::new(1, FaultKind::Pass),
                Fault::new(1, FaultKind::InternalError),
                Fault::new(1, FaultKind::DropConnection),
                Fault::new(1, FaultKind::Pass),
                Fault::new(1, FaultKind::TooManyRequests { retry_after: None }),
                Fault::new(1, FaultKind::Unauthorized),
                Fault::new(1, FaultKind::Pass),
                Fault::new(1, FaultKind::Forbidden),
            ],
        );
        let job = s.sync(id, false).await;
        assert_eq!(job.status, "succeeded", "{job:?}");
        s.assert_matches_abm(id, server).await;
        // The delta sync too, with a session that expires between pages.
        s.abm_devices(server, 250);
        s.sim.set_session_policy(Duration::seconds(1), Some(2));
        s.sim.push_faults(
            Endpoint::SyncDevices,
            vec![
                Fault::new(1, FaultKind::Slow(StdDuration::from_millis(300))),
                Fault::new(1, FaultKind::Unauthorized),
            ],
        );
        s.advance(Duration::seconds(5));
        let job = s.sync(id, false).await;
        assert_eq!(job.status, "succeeded", "{job:?}");
        s.assert_matches_abm(id, server).await;
        let fetches = s.sim.requests().iter().filter(|r| r.path == "/session").count();
        assert!(fetches >= 3, "sessions were renewed ({fetches})");
        s.stop().await;
    }
}

#[tokio::test]
async fn persistent_failure_is_recorded_and_the_next_run_resumes() {
    let s = TestServer::start(TestDb::sqlite(), small_pages()).await;
    let (id, server) = s.connect("Down").await;
    s.abm_devices(server, 300);
    s.sim.push_faults(
        Endpoint::FetchDevices,
        vec![
            Fault::new(1, FaultKind::Pass),
            Fault::new(20, FaultKind::ServiceUnavailable { retry_after: None }),
        ],
    );
    let job = s.sync(id, false).await;
    assert_eq!(job.status, "failed");
    assert!(
        job.error.as_deref().unwrap().contains("could not be reached"),
        "{job:?}"
    );
    let t = s.token(id).await;
    assert_eq!(t["sync"]["last_result"], "failed");
    assert!(t["sync"]["last_error"].as_str().unwrap().contains("Apple"));
    assert_eq!(t["device_count"], 100, "the page before the failure is kept");
    s.sim.clear_faults();
    let job = s.sync(id, false).await;
    assert_eq!(
        (job.status.as_str(), job.mode.as_deref()),
        ("succeeded", Some("resume")),
        "{job:?}"
    );
    s.assert_matches_abm(id, server).await;
    s.stop().await;
}

#[tokio::test]
async fn an_interrupted_sync_resumes_and_ends_equal_to_abm() {
    for s in servers("abm::interrupted", small_pages()).await {
        let (id, server) = s.connect("Crash").await;
        s.abm_devices(server, 1000);
        // Slow pages, and the process "dies" in the middle (the task is aborted: no clean-up).
        s.sim.push_faults(
            Endpoint::FetchDevices,
            vec![Fault::new(100, FaultKind::Slow(StdDuration::from_millis(150)))],
        );
        let core = s.server.core.clone();
        let task = tokio::spawn(async move {
            core.ade_sync_now(id, russet_core::sync::SyncOrigin::Scheduled, false)
                .await
        });
        // Abort as soon as the first pages are stored (a fixed sleep was flaky on a loaded machine).
        for _ in 0..400 {
            if !s.devices(id, false).await.is_empty() {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        task.abort();
        let _ = task.await;
        let partial = s.devices(id, false).await.len();
        assert!(
            partial > 0 && partial < 1000,
            "the crash happened mid-way ({partial} devices stored)"
        );
        s.sim.clear_faults();
        // The lease of the dead run blocks a new one until it lapses.
        let r = s
            .json(
                s.req(Method::POST, &format!("/api/v1/ade-tokens/{id}/sync")),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&r), "sync_running");
        s.advance(Duration::minutes(16));
        s.server.core.scheduler_tick().await;
        let jobs = s
            .json(
                s.req(Method::GET, &format!("/api/v1/jobs?token_id={id}&kind=sync")),
                StatusCode::OK,
            )
            .await;
        let jobs = jobs["jobs"].as_array().unwrap();
        assert_eq!(
            jobs[0]["status"], "succeeded",
            "the scheduler resumed the sync: {jobs:?}"
        );
        assert_eq!(jobs[0]["mode"], "resume");
        assert_eq!(jobs[1]["status"], "interrupted", "the dead run is marked");
        s.assert_matches_abm(id, server).await;
        s.stop().await;
    }
}

#[tokio::test]
async fn expired_and_invalid_cursors_lead_to_a_full_fetch() {
    let s = TestServer::start(TestDb::sqlite(), small_pages()).await;
    let (id, server) = s.connect("Cursors").await;
    let serials = s.abm_devices(server, 250);
    s.sync(id, false).await;
    // A week and a day later: the cursor expired; meanwhile devices were released.
    s.sim.release_devices(&serials[..5]).unwrap();
    s.advance(Duration::days(8));
    let job = s.sync(id, false).await;
    assert_eq!(
        (job.status.as_str(), job.progress["mode"].as_str()),
        ("succeeded", Some("full")),
        "{job:?}"
    );
    s.assert_matches_abm(id, server).await;
    assert_eq!(
        s.token(id).await["removed_device_count"],
        5,
        "the full fetch found the released devices gone"
    );
    // Apple says the cursor is invalid: fetch everything again.
    s.sim.push_faults(
        Endpoint::SyncDevices,
        vec![Fault::new(1, FaultKind::BadRequest("INVALID_CURSOR".into()))],
    );
    let job = s.sync(id, false).await;
    assert_eq!(
        (job.status.as_str(), job.progress["mode"].as_str()),
        ("succeeded", Some("full"))
    );
    s.assert_matches_abm(id, server).await;
    s.stop().await;
}

#[tokio::test]
async fn terms_not_signed_is_shown_and_cleared() {
    for s in servers("abm::terms", small_pages()).await {
        let (id, server) = s.connect("Terms").await;
        s.abm_devices(server, 10);
        s.sim.set_terms_pending(s.org, true);
        let job = s.sync(id, false).await;
        assert_eq!(job.status, "failed");
        let t = s.token(id).await;
        assert_eq!(t["status"], "terms_not_signed");
        assert!(t["status_message"].as_str().unwrap().contains("accept"), "{t}");
        // Profiles cannot be defined meanwhile, with the same explanation.
        let r = s
            .json(
                s.req(Method::POST, &format!("/api/v1/ade-tokens/{id}/profiles"))
                    .json(&json!({"name": "P"})),
                StatusCode::BAD_GATEWAY,
            )
            .await;
        assert_eq!(code(&r), "abm_terms_not_signed");
        s.sim.set_terms_pending(s.org, false);
        let job = s.sync(id, false).await;
        assert_eq!(job.status, "succeeded");
        assert_eq!(s.token(id).await["status"], "active");
        s.stop().await;
    }
}

#[tokio::test]
async fn manual_sync_limits_and_the_seven_day_full_sync_rule() {
    let s = TestServer::start(TestDb::sqlite(), small_pages()).await;
    let (id, server) = s.connect("Limits").await;
    let serials = s.abm_devices(server, 120);
    let job = s
        .json(
            s.req(Method::POST, &format!("/api/v1/ade-tokens/{id}/sync")),
            StatusCode::ACCEPTED,
        )
        .await;
    let job = s.wait_job(job["id"].as_i64().unwrap()).await;
    assert_eq!(job["status"], "succeeded");
    // A second manual sync within 15 minutes: 429 with the time it becomes possible.
    let resp = s
        .req(Method::POST, &format!("/api/v1/ade-tokens/{id}/sync"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((890..=900).contains(&retry), "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "sync_too_soon");
    assert!(body["error"]["details"]["available_at"].is_string());
    s.advance(Duration::minutes(16));
    // A full sync within 7 days of the last full one only adds serials not yet known.
    s.sim
        .modify_devices(
            &serials[..3],
            DeviceChange {
                // Not a colour: applesim gives devices random colours, MIDNIGHT among them.
                asset_tag: Some("LIMITED-1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let newer = s.abm_devices(server, 7);
    let job = s
        .json(
            s.req(Method::POST, &format!("/api/v1/ade-tokens/{id}/sync"))
                .json(&json!({"full": true})),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(job["mode"], "full_new_only");
    assert!(job["message"].as_str().unwrap().contains("7 days"), "{job}");
    let job = s.wait_job(job["id"].as_i64().unwrap()).await;
    assert_eq!(job["progress"]["added"], 7);
    let all = s.devices(id, false).await;
    assert!(all.contains_key(&newer[0]));
    assert_ne!(
        all[&serials[0]]["asset_tag"], "LIMITED-1",
        "known serials are not refreshed by a limited full sync: {}",
        all[&serials[0]]
    );
    // Eight days on, a full sync is a real one.
    s.advance(Duration::days(8));
    let job = s
        .json(
            s.req(Method::POST, &format!("/api/v1/ade-tokens/{id}/sync"))
                .json(&json!({"full": true})),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(job["mode"], "full");
    s.wait_job(job["id"].as_i64().unwrap()).await;
    s.assert_matches_abm(id, server).await;
    // Bad bodies.
    s.advance(Duration::minutes(16));
    let r = s
        .json(
            s.req(Method::POST, &format!("/api/v1/ade-tokens/{id}/sync"))
                .body("{\"ful\": true}"),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(code(&r), "invalid_json");
    let audit = s.audit().await;
    assert!(audit.iter().any(|e| e["action"] == "ade_token.sync"));
    s.stop().await;
}

#[tokio::test]
async fn one_sync_per_token_across_processes() {
    let Some(db) = TestDb::postgres("abm::one_sync_per_token").await else {
        return;
    };
    let s = TestServer::start(db, small_pages()).await;
    let (id, server) = s.connect("Shared").await;
    s.abm_devices(server, 400);
    // A second Russet process on the same database.
    let master = std::fs::read_to_string(s.db.path().join("data/master.key")).unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut config = config_for(&s.db, &s.sim_run.as_ref().unwrap().base_url, small_pages());
    config.data_dir = dir_b.path().to_path_buf();
    let b = russet_server::serve::start(
        &config,
        russet_server::serve::StartOptions {
            master_key: Some(master.trim().into()),
            clock: std::sync::Arc::new(s.clock.clone()),
        },
    )
    .await
    .unwrap();
    s.sim.push_faults(
        Endpoint::FetchDevices,
        vec![Fault::new(4, FaultKind::Slow(StdDuration::from_millis(200)))],
    );
    let (ra, rb) = tokio::join!(
        s.server
            .core
            .ade_sync_now(id, russet_core::sync::SyncOrigin::Scheduled, false),
        async {
            tokio::time::sleep(StdDuration::from_millis(100)).await;
            b.core
                .ade_sync_now(id, russet_core::sync::SyncOrigin::Scheduled, false)
                .await
        }
    );
    assert_eq!(ra.unwrap().status, "succeeded");
    assert_eq!(
        rb.unwrap_err().code,
        "sync_running",
        "the other process does not sync the same token meanwhile"
    );
    s.assert_matches_abm(id, server).await;
    b.shutdown().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn profiles_are_validated_defined_at_apple_assigned_and_throttled() {
    for s in servers("abm::profiles", small_pages()).await {
        let (id, server) = s.connect("Profiles").await;
        let serials = s.abm_devices(server, 2500);
        s.sync(id, false).await;

        // Every bad field at once, before anything reaches Apple.
        let before = s.sim.requests().len();
        let bad = json!({
            "name": "",
            "department": "d".repeat(126),
            "support_email": "not-an-email",
            "supervised": false,
            "locked_enrollment": true,
            "skip_setup_panes": ["passcode", "teleport"],
            "device_name_template": "{{SERIAL}}-{{OWNER}}",
            "region": "France",
        });
        let r = s
            .json(
                s.req(Method::POST, &format!("/api/v1/ade-tokens/{id}/profiles"))
                    .json(&bad),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert_eq!(code(&r), "invalid_profile");
        let fields = r["error"]["details"]["fields"].as_object().unwrap();
        for f in [
            "name",
            "department",
            "support_email",
            "locked_enrollment",
            "skip_setup_panes",
            "device_name_template",
            "region",
        ] {
            assert!(fields.contains_key(f), "{f} missing: {fields:?}");
        }
        assert_eq!(s.sim.requests().len(), before, "nothing was sent to Apple");
        let r = s
            .json(
                s.req(Method::POST, &format!("/api/v1/ade-tokens/{id}/profiles"))
                    .json(&json!({"name": "x", "superviced": true})),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert!(message(&r).contains("superviced"));

        // A real profile, as Apple receives it.
        let p = s
            .json(
                s.req(Method::POST, &format!("/api/v1/ade-tokens/{id}/profiles"))
                    .json(&json!({
                        "name": "Corporate iPads",
                        "locked_enrollment": true,
                        "await_device_configured": true,
                        "department": "IT",
                        "department_phone": "+1 555 0100",
                        "support_email": "help@example.com",
                        "language": "en",
                        "region": "US",
                        "skip_setup_panes": ["location_services", "Siri", "apple_pay"],
                        "device_name_template": "{{DEVICETYPE}}-{{SERIAL}}",
                    })),
                StatusCode::CREATED,
            )
            .await;
        let pid = p["id"].as_i64().unwrap();
        let uuid = p["apple_profile_uuid"].as_str().unwrap().to_string();
        let at_apple = s.sim.profile(&uuid).expect("defined at Apple");
        assert_eq!(at_apple["profile_name"], "Corporate iPads");
        assert_eq!(at_apple["is_mdm_removable"], false);
        assert_eq!(at_apple["is_supervised"], true);
        assert_eq!(at_apple["await_device_configured"], true);
        assert_eq!(at_apple["url"], p["enroll_url"]);
        assert_eq!(
            at_apple["configuration_web_url"], p["sign_in_url"],
            "user affinity: a sign-in page"
        );
        assert!(p["enroll_url"].as_str().unwrap().starts_with(&s.url));
        let skip: Vec<&str> = at_apple["skip_setup_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(skip, ["Location", "Siri", "Payment"]);

        // Assign 2500 devices: requests of at most 1000 serials, throttled beyond 1800 per window.
        s.sim.set_assign_throttle(
            server,
            Some(ThrottlePolicy {
                devices_per_window: 1800,
                window: Duration::hours(1),
                retry_after_seconds: 600,
            }),
        );
        s.sim.release_devices(&serials[..3]).unwrap(); // gone from ABM, not yet synced: NOT_ACCESSIBLE
        s.sim.clear_requests();
        let job = s
            .json(
                s.req(Method::POST, &format!("/api/v1/profiles/{pid}/assign"))
                    .json(&json!({"filter": "any"})),
                StatusCode::ACCEPTED,
            )
            .await;
        let job = s.wait_job(job["id"].as_i64().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let assigns: Vec<usize> = s
            .sim
            .requests()
            .iter()
            .filter(|r| r.path == "/profile/devices")
            .map(|r| r.serials.unwrap_or(0))
            .collect();
        assert_eq!(assigns.iter().sum::<usize>(), 2500);
        assert!(assigns.iter().all(|n| *n <= 1000), "{assigns:?}");
        assert_eq!(job["progress"]["not_accessible"], 3, "{job}");
        // The 3 devices gone from ABM do not count against Apple's budget.
        assert_eq!(job["progress"]["throttled"], 2500 - 3 - 1800, "{job}");
        assert!(job["message"].as_str().unwrap().contains("throttled"));
        let throttled = s
            .json(
                s.req(
                    Method::GET,
                    &format!("/api/v1/devices?token_id={id}&assign_state=throttled&limit=1"),
                ),
                StatusCode::OK,
            )
            .await;
        assert_eq!(throttled["total"], 697);
        let d = &throttled["devices"][0];
        let retry = time::OffsetDateTime::parse(
            d["assignment"]["retry_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(
            retry,
            NOW + Duration::seconds(600),
            "retried after Apple's retry_after_seconds"
        );
        // Not before that time…
        s.server.core.scheduler_tick().await;
        assert_eq!(
            s.json(
                s.req(
                    Method::GET,
                    &format!("/api/v1/devices?token_id={id}&assign_state=throttled&limit=1")
                ),
                StatusCode::OK
            )
            .await["total"],
            697
        );
        // …then the scheduler retries them (the sim's window has passed too).
        s.advance(Duration::hours(2));
        s.server.core.scheduler_tick().await;
        let ok = s
            .json(
                s.req(
                    Method::GET,
                    &format!("/api/v1/devices?token_id={id}&assign_state=success&limit=1"),
                ),
                StatusCode::OK,
            )
            .await;
        assert_eq!(ok["total"], 2500 - 3);
        let sim_dev = s.sim.device(&serials[100]).unwrap();
        assert_eq!(
            (sim_dev.profile_uuid.as_deref(), sim_dev.profile_status.as_str()),
            (Some(uuid.as_str()), "assigned")
        );
        // A device's history shows the throttle and the retry.
        let t_serial = d["serial_number"].as_str().unwrap();
        let detail = s
            .json(
                s.req(Method::GET, &format!("/api/v1/devices/{t_serial}")),
                StatusCode::OK,
            )
            .await;
        let results: Vec<&str> = detail["assignment_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["result"].as_str().unwrap())
            .collect();
        assert_eq!(results, ["success", "throttled"]);

        // Deleting the profile is refused while devices have it; so is deleting the token.
        let r = s
            .json(
                s.req(Method::DELETE, &format!("/api/v1/profiles/{pid}")),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(code(&r), "profile_in_use");
        // Russet has not synced since 3 of them left ABM: it still counts them.
        assert!(message(&r).contains("2500 devices"), "{}", message(&r));
        let r = s
            .json(
                s.req(Method::DELETE, &format!("/api/v1/ade-tokens/{id}")),
                StatusCode::CONFLICT,
            )
            .await;
        assert!(
            message(&r).contains("devices") && message(&r).contains("1 enrollment profile"),
            "{}",
            message(&r)
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn assignment_by_serials_checks_them_and_bad_requests_change_nothing() {
    let s = TestServer::start(TestDb::sqlite(), small_pages()).await;
    let (id, server) = s.connect("Serials").await;
    let serials = s.abm_devices(server, 20);
    s.sync(id, false).await;
    let pid = s
        .json(
            s.req(Method::POST, &format!("/api/v1/ade-tokens/{id}/profiles"))
                .json(&json!({"name": "P"})),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let r = s
        .json(
            s.req(Method::POST, &format!("/api/v1/profiles/{pid}/assign"))
                .json(&json!({"serials": [serials[0], "NOTMYDEVICE1"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(code(&r), "unknown_serials");
    assert!(message(&r).contains("NOTMYDEVICE1") && !message(&r).contains(&serials[0]));
    for body in [
        json!({}),
        json!({"serials": [], "filter": "any"}),
        json!({"filter": "everything"}),
        json!({"filter": "profile"}),
    ] {
        let r = s
            .json(
                s.req(Method::POST, &format!("/api/v1/profiles/{pid}/assign"))
                    .json(&body),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(code(&r), "invalid_assignment", "{body}");
    }
    let none = s
        .json(
            s.req(Method::GET, &format!("/api/v1/devices?token_id={id}&profile_id={pid}")),
            StatusCode::OK,
        )
        .await;
    assert_eq!(none["total"], 0, "refused assignments marked nothing");
    // Lower-case and duplicated serials are fine.
    let job = s
        .json(
            s.req(Method::POST, &format!("/api/v1/profiles/{pid}/assign"))
                .json(&json!({"serials": [serials[0].to_lowercase(), serials[0], serials[1]]})),
            StatusCode::ACCEPTED,
        )
        .await;
    let job = s.wait_job(job["id"].as_i64().unwrap()).await;
    assert_eq!(job["progress"]["success"], 2, "{job}");
    s.stop().await;
}

#[tokio::test]
async fn default_profile_edits_and_device_records() {
    for s in servers("abm::default_profile", small_pages()).await {
        let (id, server) = s.connect("Defaults").await;
        let first = s.abm_devices(server, 40);
        s.sync(id, false).await;
        let p = s
            .json(
                s.req(Method::POST, &format!("/api/v1/ade-tokens/{id}/profiles"))
                    .json(&json!({"name": "Standard", "user_affinity": false})),
                StatusCode::CREATED,
            )
            .await;
        let pid = p["id"].as_i64().unwrap();
        assert!(p["sign_in_url"].is_null(), "no sign-in without user affinity");
        let t = s
            .json(
                s.req(Method::PUT, &format!("/api/v1/ade-tokens/{id}/default-profile"))
                    .json(&json!({"profile_id": pid})),
                StatusCode::OK,
            )
            .await;
        assert_eq!(t["default_profile_id"], pid);
        // Newly synced devices get the default profile; existing ones are left alone.
        let new = s.abm_devices(server, 25);
        s.sync(id, false).await;
        s.server.core.scheduler_tick().await;
        let with = s
            .json(
                s.req(
                    Method::GET,
                    &format!("/api/v1/devices?token_id={id}&profile_id={pid}&assign_state=success"),
                ),
                StatusCode::OK,
            )
            .await;
        assert_eq!(with["total"], 25, "{with}");
        assert_eq!(
            s.sim.device(&new[0]).unwrap().profile_uuid,
            p["apple_profile_uuid"].as_str().map(str::to_string)
        );
        assert!(s.sim.device(&first[0]).unwrap().profile_uuid.is_none());
        let unassigned = s
            .json(
                s.req(Method::GET, &format!("/api/v1/devices?token_id={id}&unassigned=true")),
                StatusCode::OK,
            )
            .await;
        assert_eq!(unassigned["total"], 40);

        // The default cannot be deleted; an edit defines a new Apple profile and reassigns.
        let r = s
            .json(
                s.req(Method::DELETE, &format!("/api/v1/profiles/{pid}")),
                StatusCode::CONFLICT,
            )
            .await;
        assert!(message(&r).contains("default"));
        let edit = s
            .json(
                s.req(Method::PATCH, &format!("/api/v1/profiles/{pid}"))
                    .json(&json!({"department": "Field team"})),
                StatusCode::OK,
            )
            .await;
        let new_uuid = edit["profile"]["apple_profile_uuid"].as_str().unwrap().to_string();
        assert_ne!(Some(new_uuid.as_str()), p["apple_profile_uuid"].as_str());
        assert_eq!(edit["devices_reassigned"], 25);
        assert!(
            edit["notice"]
                .as_str()
                .unwrap()
                .contains("keep it until they are erased")
        );
        s.wait_job(edit["job_id"].as_i64().unwrap()).await;
        assert_eq!(
            s.sim.device(&new[0]).unwrap().profile_uuid.as_deref(),
            Some(new_uuid.as_str())
        );
        assert_eq!(s.sim.profile(&new_uuid).unwrap()["department"], "Field team");
        let r = s
            .json(
                s.req(Method::PATCH, &format!("/api/v1/profiles/{pid}"))
                    .json(&json!({"region": "Europe"})),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert!(r["error"]["details"]["fields"]["region"].is_string());

        // Devices: filters, pagination, details, deletion (and its return at the next full sync).
        let page1 = s
            .json(
                s.req(Method::GET, &format!("/api/v1/devices?token_id={id}&limit=30")),
                StatusCode::OK,
            )
            .await;
        assert_eq!(
            (page1["total"].as_i64(), page1["devices"].as_array().unwrap().len()),
            (Some(65), 30)
        );
        let cursor = page1["next_cursor"].as_str().unwrap();
        let page2 = s
            .json(
                s.req(
                    Method::GET,
                    &format!("/api/v1/devices?token_id={id}&limit=30&cursor={cursor}"),
                ),
                StatusCode::OK,
            )
            .await;
        assert!(page2["devices"][0]["serial_number"].as_str().unwrap() > cursor);
        let macs = s
            .json(
                s.req(Method::GET, &format!("/api/v1/devices?token_id={id}&family=Mac")),
                StatusCode::OK,
            )
            .await;
        assert!(
            macs["devices"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["device_family"] == "Mac")
        );
        let prefix = &first[0][..3];
        let by_prefix = s
            .json(
                s.req(
                    Method::GET,
                    &format!("/api/v1/devices?serial_prefix={}", prefix.to_lowercase()),
                ),
                StatusCode::OK,
            )
            .await;
        assert!(
            by_prefix["devices"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["serial_number"].as_str().unwrap().starts_with(prefix))
        );
        for bad in ["assign_state=done", "added_since=yesterday", "limit=x", "colour=red"] {
            let r = s
                .json(
                    s.req(Method::GET, &format!("/api/v1/devices?{bad}")),
                    StatusCode::BAD_REQUEST,
                )
                .await;
            assert_eq!(code(&r), "invalid_query", "{bad}");
        }
        let r = s
            .json(
                s.req(Method::GET, "/api/v1/devices?serial_prefix=AB%25"),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert_eq!(code(&r), "invalid_serial");
        let gone = s
            .json(
                s.req(Method::DELETE, &format!("/api/v1/devices/{}", first[1])),
                StatusCode::OK,
            )
            .await;
        assert!(
            gone["notice"]
                .as_str()
                .unwrap()
                .contains("next full sync brings it back")
        );
        s.json(
            s.req(Method::GET, &format!("/api/v1/devices/{}", first[1])),
            StatusCode::NOT_FOUND,
        )
        .await;
        s.advance(Duration::days(8));
        s.sync(id, true).await;
        s.json(
            s.req(Method::GET, &format!("/api/v1/devices/{}", first[1])),
            StatusCode::OK,
        )
        .await;
        s.stop().await;
    }
}

#[tokio::test]
async fn removed_devices_are_purged_after_the_retention_and_then_release_the_token() {
    let s = TestServer::start(TestDb::sqlite(), small_pages()).await;
    let (id, server) = s.connect("Purge").await;
    let serials = s.abm_devices(server, 10);
    s.sync(id, false).await;
    s.sim.release_devices(&serials).unwrap();
    s.sync(id, false).await;
    let t = s.token(id).await;
    assert_eq!(
        (t["device_count"].as_i64(), t["removed_device_count"].as_i64()),
        (Some(0), Some(10))
    );
    s.advance(Duration::days(29));
    s.server.core.scheduler_tick().await;
    assert_eq!(
        s.token(id).await["removed_device_count"],
        10,
        "kept during the retention period"
    );
    s.advance(Duration::days(2));
    s.server.core.scheduler_tick().await;
    assert_eq!(s.token(id).await["removed_device_count"], 0, "purged after 30 days");
    // Nothing left: the token can go.
    let r = s
        .req(Method::DELETE, &format!("/api/v1/ade-tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    s.stop().await;
}

#[tokio::test]
async fn the_scheduler_syncs_every_twelve_hours_and_after_an_upload() {
    let s = TestServer::start(
        TestDb::sqlite(),
        Options {
            sync_enabled: true,
            page_size: 100,
        },
    )
    .await;
    let (id, server) = s.connect("Scheduled").await;
    s.abm_devices(server, 5);
    // The upload started a sync in the background.
    let mut first = None;
    for _ in 0..200 {
        let jobs = s
            .json(
                s.req(Method::GET, &format!("/api/v1/jobs?token_id={id}")),
                StatusCode::OK,
            )
            .await;
        if let Some(j) = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["origin"] == "upload" && j["status"] != "running")
        {
            first = Some(j.clone());
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    assert_eq!(first.expect("a sync after the upload")["status"], "succeeded");
    s.abm_devices(server, 7);
    s.server.core.scheduler_tick().await;
    assert!(s.devices(id, false).await.len() < 12, "not due yet");
    s.advance(Duration::hours(12));
    s.server.core.scheduler_tick().await;
    s.assert_matches_abm(id, server).await;
    s.stop().await;
}
