//! The `russet` binary as an administrator uses it: a real `russet serve` process, and the
//! CLI commands against it over HTTP, on SQLite and (when configured) PostgreSQL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use applesim::{AppleSim, DeviceSpec, OrgId, OrgKind, RunningSim, ServerId, SimCredentials};
use russet_testkit::{SmimeForm, TestDb, apple_token_payload, have_command, openssl_self_signed, smime_encrypt};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_russet");
/// For servers that never reach Apple in a test.
const NO_APPLE: &str = "http://127.0.0.1:9";
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/abm-server-token/"
);

/// Apple's side (applesim) on its own runtime, for `russet serve` processes to talk to.
struct Apple {
    rt: tokio::runtime::Runtime,
    sim: AppleSim,
    run: Option<RunningSim>,
    org: OrgId,
}

impl Apple {
    fn start() -> Apple {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let sim = AppleSim::new();
        let run = rt.block_on(sim.serve("127.0.0.1:0".parse().unwrap())).unwrap();
        let org = sim.create_org("Example Org", OrgKind::Business);
        Apple {
            rt,
            sim,
            run: Some(run),
            org,
        }
    }

    fn url(&self) -> String {
        self.run.as_ref().map(|r| r.base_url.clone()).unwrap_or_default()
    }

    /// Makes Apple accept these credentials as the token of a new MDM server.
    fn register(&self, consumer_key: &str, tag: &str, expiry: &str) -> ServerId {
        let server = self.sim.create_mdm_server(self.org, &format!("server {tag}"));
        self.sim.register_credentials(
            server,
            SimCredentials {
                consumer_key: consumer_key.into(),
                consumer_secret: format!("CS_secret{tag}"),
                access_token: format!("AT_token{tag}"),
                access_secret: format!("AS_secret{tag}"),
                access_token_expiry: time::OffsetDateTime::parse(
                    expiry,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap(),
            },
        );
        server
    }
}

impl Drop for Apple {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            self.rt.block_on(run.shutdown());
        }
    }
}

/// A `russet serve` process, stopped with SIGTERM when dropped.
struct Serve {
    child: Child,
    url: String,
    data_dir: PathBuf,
    logs: mpsc::Receiver<String>,
}

impl Serve {
    // The child moves into `Serve`, whose Drop kills and waits for it.
    #[allow(clippy::zombie_processes)]
    fn start(db: &TestDb, dep_url: &str, extra_env: &[(&str, &str)]) -> Serve {
        let data_dir = db.path().join("data");
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--apple-dep-url",
            dep_url,
            "--data-dir",
        ])
        .arg(&data_dir)
        .arg("--database-url")
        .arg(&db.url)
        .current_dir(db.path())
        .env_remove("RUSSET_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("russet serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("server logs that it serves");
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("every log line is JSON: {line}"));
            if v["message"] == "russet is serving" {
                let url = format!("http://{}", v["listen"].as_str().unwrap());
                return Serve {
                    child,
                    url,
                    data_dir,
                    logs: rx,
                };
            }
        }
    }

    /// Runs a CLI command against this server.
    fn cli(&self, args: &[&str]) -> Output {
        cli_in(
            self.data_dir.parent().unwrap(),
            args,
            &[
                ("RUSSET_SERVER", &self.url),
                ("RUSSET_DATA_DIR", self.data_dir.to_str().unwrap()),
            ],
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "russet {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).expect("--json prints JSON")
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(!out.status.success(), "russet {args:?} should fail");
        assert!(out.stdout.is_empty(), "errors go to stderr only");
        String::from_utf8(out.stderr).unwrap()
    }

    /// SIGTERM, then the exit status and the remaining logs.
    fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        // The reader thread forwards the last lines after the process exits: read until it
        // sees the end of the stream (the channel closes), not just what has arrived.
        let mut logs = Vec::new();
        while let Ok(line) = self.logs.recv_timeout(std::time::Duration::from_secs(5)) {
            logs.push(line);
        }
        (status, logs)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RUSSET_API_KEY")
        .env_remove("RUSSET_SERVER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("russet runs")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn token_lifecycle_through_the_cli() {
    if !have_command("cli::token_lifecycle", "openssl", "openssl") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    for db in rt.block_on(TestDb::all("cli::token_lifecycle_through_the_cli")) {
        let apple = Apple::start();
        apple.register("CK_cli", "1", "2099-01-01T00:00:00Z");
        let s = Serve::start(&db, &apple.url(), &[]);
        let dir = db.path();
        let pk = dir.join("pk.pem");
        let created = s.json(&[
            "ade-token",
            "create",
            "--name",
            "Head office",
            "--out",
            pk.to_str().unwrap(),
        ]);
        let id = created["id"].as_i64().unwrap().to_string();
        assert_eq!(created["status"], "pending");
        let pem = std::fs::read_to_string(&pk).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(s.ok(&["ade-token", "public-key", &id]), pem);
        // --out never overwrites a file.
        assert!(
            s.fails(&["ade-token", "public-key", &id, "--out", pk.to_str().unwrap()])
                .contains("must not exist")
        );

        // ABM encrypts the server token to that public key.
        let token = smime_encrypt(
            &pem,
            &apple_token_payload("CK_cli", "1", "2099-01-01T00:00:00Z"),
            "-aes128",
            SmimeForm::SmimeStream,
        );
        let file = write(dir, "Head_office_Token_smime.p7m", &token);
        let out = s.ok(&[
            "ade-token",
            "upload",
            &id,
            "--file",
            &file,
            "--apple-id",
            "admin@example.com",
        ]);
        assert!(out.contains("is active until 2099-01-01 00:00 UTC"), "{out}");
        // Uploading again as a first upload is refused: the CLI keeps upload and renew apart.
        let err = s.fails(&[
            "ade-token",
            "upload",
            &id,
            "--file",
            &file,
            "--apple-id",
            "admin@example.com",
        ]);
        assert!(
            err.contains("already has a server token") && err.contains("renew"),
            "{err}"
        );

        let list = s.ok(&["ade-token", "list"]);
        assert!(
            list.contains("Head office") && list.contains("active") && list.contains("admin@example.com"),
            "{list}"
        );
        let shown = s.json(&["ade-token", "show", "head office"]);
        assert_eq!(shown["id"].to_string(), id, "tokens can be named instead of numbered");

        // Renewal in place, then a token from another ABM server refused, then forced.
        // ABM: the same MDM server's new token (it replaces the first), and another server's.
        let cli_server = apple.sim.create_mdm_server(apple.org, "renewed");
        apple.sim.register_credentials(
            cli_server,
            SimCredentials {
                consumer_key: "CK_cli".into(),
                consumer_secret: "CS_secret2".into(),
                access_token: "AT_token2".into(),
                access_secret: "AS_secret2".into(),
                access_token_expiry: time::macros::datetime!(2099-06-01 0:00 UTC),
            },
        );
        apple.register("CK_else", "3", "2099-07-01T00:00:00Z");
        let newer = write(
            dir,
            "new.p7m",
            &smime_encrypt(
                &pem,
                &apple_token_payload("CK_cli", "2", "2099-06-01T00:00:00Z"),
                "-aes256",
                SmimeForm::Der,
            ),
        );
        let out = s.ok(&[
            "ade-token",
            "renew",
            &id,
            "--file",
            &newer,
            "--apple-id",
            "second@example.com",
        ]);
        assert!(
            out.contains("renewed in place") && out.contains("2099-06-01") && out.contains("Apple ID changed"),
            "{out}"
        );
        let other = write(
            dir,
            "other.p7m",
            &smime_encrypt(
                &pem,
                &apple_token_payload("CK_else", "3", "2099-07-01T00:00:00Z"),
                "-aes128",
                SmimeForm::Pem,
            ),
        );
        let err = s.fails(&[
            "ade-token",
            "renew",
            &id,
            "--file",
            &other,
            "--apple-id",
            "second@example.com",
        ]);
        assert!(
            err.starts_with("error: ") && err.contains("different MDM server") && err.contains("consumer_key_mismatch"),
            "{err}"
        );
        let forced = s.json(&[
            "ade-token",
            "renew",
            &id,
            "--file",
            &other,
            "--apple-id",
            "second@example.com",
            "--force",
        ]);
        assert_eq!(forced["forced"], true);

        // Bad inputs.
        let junk = write(dir, "junk.p7m", b"not a token at all");
        let err = s.fails(&[
            "ade-token",
            "renew",
            &id,
            "--file",
            &junk,
            "--apple-id",
            "a@example.com",
        ]);
        assert!(err.contains("not an Apple Business Manager server token"), "{err}");
        let huge = write(dir, "huge.p7m", &vec![b'x'; 2 * 1024 * 1024]);
        assert!(
            s.fails(&[
                "ade-token",
                "renew",
                &id,
                "--file",
                &huge,
                "--apple-id",
                "a@example.com"
            ])
            .contains("larger than 1 MiB")
        );
        assert!(
            s.fails(&[
                "ade-token",
                "upload",
                &id,
                "--file",
                "/nonexistent.p7m",
                "--apple-id",
                "a@example.com"
            ])
            .contains("cannot open")
        );
        assert!(
            s.fails(&["ade-token", "show", "no such token"])
                .contains("no token named")
        );
        assert!(s.fails(&["ade-token", "show", "999"]).contains("ade_token_not_found"));

        // Delete: a pending token goes; the active one too (no devices or profiles yet).
        let pending = s.json(&["ade-token", "create", "--name", "spare"])["id"]
            .as_i64()
            .unwrap()
            .to_string();
        assert!(s.ok(&["ade-token", "delete", &pending]).contains("Deleted token"));
        s.ok(&["ade-token", "delete", &id]);
        assert!(s.ok(&["ade-token", "list"]).contains("No enrollment program tokens"));

        let (status, logs) = s.stop();
        assert!(status.success(), "SIGTERM ends the server cleanly: {status:?}");
        assert!(logs.iter().any(|l| l.contains("stopped")), "{logs:?}");
    }
}

#[test]
fn keys_and_unreachable_servers_are_explained() {
    let db = TestDb::sqlite();
    let s = Serve::start(&db, NO_APPLE, &[]);
    let key_file = s.data_dir.join("admin-api-key");
    let old_key = std::fs::read_to_string(&key_file).unwrap().trim().to_string();
    assert!(old_key.starts_with("rst_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(s.data_dir.join("master.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    let wrong = cli_in(
        db.path(),
        &["ade-token", "list"],
        &[("RUSSET_SERVER", &s.url), ("RUSSET_API_KEY", "rst_wrong")],
    );
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not valid"));
    let down = cli_in(
        db.path(),
        &["ade-token", "list", "--server", "http://127.0.0.1:9", "--api-key", "k"],
        &[],
    );
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot reach Russet at http://127.0.0.1:9"));
    let nokey = cli_in(
        db.path(),
        &["ade-token", "list", "--data-dir", "/nonexistent"],
        &[("RUSSET_SERVER", &s.url)],
    );
    assert!(String::from_utf8_lossy(&nokey.stderr).contains("--api-key"));

    // Rotation, on the server machine, while the server runs: the old key stops working at once.
    let rotated = cli_in(
        db.path(),
        &[
            "admin-key",
            "rotate",
            "--data-dir",
            s.data_dir.to_str().unwrap(),
            "--database-url",
            &db.url,
            "--print",
        ],
        &[],
    );
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let new_key = String::from_utf8(rotated.stdout).unwrap().trim().to_string();
    assert_ne!(new_key, old_key);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), new_key);
    let old = cli_in(
        db.path(),
        &["ade-token", "list"],
        &[("RUSSET_SERVER", &s.url), ("RUSSET_API_KEY", &old_key)],
    );
    assert!(String::from_utf8_lossy(&old.stderr).contains("revoked"));
    s.ok(&["ade-token", "list"]);
    let audit: Value = http::get_json(&format!("{}/api/v1/audit", s.url), &new_key);
    assert_eq!(audit["entries"][0]["action"], "admin_key.rotate");
    assert_eq!(audit["entries"][0]["actor"], "local: russet admin-key rotate");
}

/// A tiny blocking GET with a bearer key (the CLI tests stay synchronous).
mod http {
    pub fn get_json(url: &str, key: &str) -> serde_json::Value {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }
}

#[test]
fn inspect_works_offline() {
    // The real Apple token with its key: expiry and consumer key shown, secrets hidden.
    let dir = tempfile::tempdir().unwrap();
    let key = format!("{FIXTURE}apple-mdm-client-tests-1.pem");
    let cert = format!("{FIXTURE}apple-mdm-client-tests-1.crt");
    let file = format!("{FIXTURE}apple-mdm-client-tests-1-server-token.p7m");
    for with_cert in [true, false] {
        let mut args = vec!["ade-token", "inspect", "--key", &key];
        if with_cert {
            args.extend(["--cert", &cert]);
        }
        args.push(&file);
        let out = cli_in(dir.path(), &args, &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("2026-01-17T11:02:21Z") && text.contains("EXPIRED") && text.contains("AES-128-CBC"),
            "{text}"
        );
        assert!(
            text.contains("CK_") && !text.contains("CS_") && !text.contains("AS_") && !text.contains("AT_"),
            "secrets hidden by default"
        );
    }
    let out = cli_in(
        dir.path(),
        &["ade-token", "inspect", "--key", &key, &file, "--json", "--show-secrets"],
        &[],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["consumer_secret"].as_str().unwrap().starts_with("CS_"));
    assert_eq!(v["expired"], true);
    assert_eq!(v["file_format"], "smime");

    // Bad inputs: a key that is not the recipient, a file that is not a token.
    if have_command("cli::inspect_works_offline", "openssl", "openssl") {
        let (_, other_key) = openssl_self_signed("other");
        let other = write(dir.path(), "other.pem", other_key.as_bytes());
        let out = cli_in(dir.path(), &["ade-token", "inspect", "--key", &other, &file], &[]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("could not be decrypted")
                || String::from_utf8_lossy(&out.stderr).contains("different public key")
        );
    }
    let junk = write(dir.path(), "junk.p7m", b"{\"json\": true}");
    let out = cli_in(dir.path(), &["ade-token", "inspect", "--key", &key, &junk], &[]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("not an Apple Business Manager server token")
    );
}

#[test]
fn configuration_file_environment_and_flags() {
    let db = TestDb::sqlite();
    let cfg = write(
        db.path(),
        "russet.toml",
        b"listen = \"127.0.0.1:0\"\nlog_format = \"text\"\npublic_url = \"https://mdm.example.com\"\n",
    );
    // An unknown key is named.
    let bad = write(db.path(), "bad.toml", b"listn = \"127.0.0.1:0\"\n");
    let out = cli_in(db.path(), &["serve", "--config", &bad], &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("listn"));
    let out = cli_in(
        db.path(),
        &["serve", "--config", &cfg],
        &[("RUSSET_EXPIRY_WARNING_DAYS", "many")],
    );
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("RUSSET_EXPIRY_WARNING_DAYS"));
    let out = cli_in(db.path(), &["serve", "--config", &cfg, "--public-url", "ftp://x"], &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("https://"));

    // RUSSET_PUBLIC_URL overrides the file, and the flag the variable (json logs from the flag).
    let s = Serve::start(
        &db,
        NO_APPLE,
        &[
            ("RUSSET_CONFIG", cfg.as_str()),
            ("RUSSET_PUBLIC_URL", "https://env.example.com"),
        ],
    );
    let key = std::fs::read_to_string(s.data_dir.join("admin-api-key")).unwrap();
    let info = http::get_json(&format!("{}/api/v1/info", s.url), key.trim());
    assert_eq!(info["public_url"], "https://env.example.com");
    assert_eq!(info["database"], "sqlite");
}

#[test]
fn a_wrong_master_key_stops_the_start_with_advice() {
    let db = TestDb::sqlite();
    let s = Serve::start(&db, NO_APPLE, &[]);
    let (status, _) = s.stop();
    assert!(status.success());
    let out = cli_in(
        db.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            db.path().join("data").to_str().unwrap(),
            "--database-url",
            &db.url,
        ],
        &[("RUSSET_MASTER_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match this database") && err.contains("RUSSET_MASTER_KEY"),
        "{err}"
    );
}

#[test]
fn sync_profiles_and_devices_through_the_cli() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for db in rt.block_on(TestDb::all("cli::sync_profiles_and_devices")) {
        let apple = Apple::start();
        let s = Serve::start(&db, &apple.url(), &[]);
        let dir = db.path();
        // The real exchange: Russet's public key to ABM, ABM's token to Russet.
        let pk = dir.join("pk.pem");
        let id = s.json(&["ade-token", "create", "--name", "Campus", "--out", pk.to_str().unwrap()])["id"]
            .as_i64()
            .unwrap()
            .to_string();
        let server = apple.sim.create_mdm_server(apple.org, "Russet Campus");
        apple
            .sim
            .upload_public_key(server, &std::fs::read_to_string(&pk).unwrap())
            .unwrap();
        let token = write(
            dir,
            "Campus_Token_smime.p7m",
            &apple.sim.download_token(server).unwrap(),
        );
        s.ok(&[
            "ade-token",
            "upload",
            &id,
            "--file",
            &token,
            "--apple-id",
            "it@example.com",
        ]);
        let serials = apple.sim.add_devices(apple.org, 150, DeviceSpec::default());
        apple.sim.assign_devices(server, &serials).unwrap();

        // The sync after the upload may still be running: wait for it, then ask for one.
        std::thread::sleep(std::time::Duration::from_millis(500));
        let out = s.cli(&["ade-token", "sync", &id]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if out.status.success() {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("devices received"),
                "{stderr}"
            );
            assert!(
                stderr.contains("sync:") && stderr.contains("pages"),
                "progress is shown: {stderr}"
            );
            // A second manual sync within 15 minutes is refused with the time it becomes possible.
            let err = s.fails(&["ade-token", "sync", &id]);
            assert!(err.contains("15 minutes") && err.contains("sync_too_soon"), "{err}");
        } else {
            assert!(stderr.contains("already running"), "{stderr}");
        }
        let shown = s.ok(&["ade-token", "show", &id]);
        assert!(
            shown.contains("Russet Campus") && shown.contains("Example Org"),
            "ABM details shown: {shown}"
        );

        // Profiles.
        let err = s.fails(&["profile", "create", "--token", "Campus"]);
        assert!(err.contains("--name"), "{err}");
        let err = s.fails(&[
            "profile", "create", "--token", "Campus", "--name", "X", "--skip", "teleport",
        ]);
        assert!(err.contains("teleport") && err.contains("invalid_profile"), "{err}");
        let created = s.json(&[
            "profile",
            "create",
            "--token",
            "Campus",
            "--name",
            "Students",
            "--locked-enrollment",
            "true",
            "--skip",
            "location_services,siri",
            "--department",
            "IT",
            "--user-affinity",
            "false",
        ]);
        let pid = created["id"].as_i64().unwrap().to_string();
        assert_eq!(
            created["settings"]["skip_setup_panes"],
            serde_json::json!(["Location", "Siri"])
        );
        let out = s.cli(&["profile", "assign", &pid, "--filter", "unassigned"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("150 assigned"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("assignment:"),
            "progress is shown"
        );
        assert!(
            s.fails(&["profile", "assign", &pid, "--filter", "everything"])
                .contains("--filter must be")
        );
        assert!(
            s.fails(&["profile", "assign", &pid, "--serials", "NOTMINE123"])
                .contains("unknown_serials")
        );
        let list = s.ok(&["profile", "list", "--token", "Campus"]);
        assert!(list.contains("Students") && list.contains("150"), "{list}");
        s.ok(&["profile", "set-default", "--token", "Campus", &pid]);
        let err = s.fails(&["profile", "delete", &pid]);
        assert!(err.contains("default") && err.contains("150 devices"), "{err}");
        let edited = s.ok(&["profile", "edit", &pid, "--department", "Campus IT"]);
        assert!(edited.contains("Campus IT") && edited.contains("erased"), "{edited}");
        assert!(s.ok(&["profile", "panes"]).contains("location_services"));

        // Devices.
        let listed = s.ok(&["device", "list", "--token", "Campus", "--limit", "10"]);
        assert!(listed.contains("10 of 150 matching devices shown"), "{listed}");
        let json = s.json(&["device", "list", "--token", "Campus", "--limit", "2000"]);
        assert_eq!(json["devices"].as_array().unwrap().len(), 150, "pages are followed");
        let detail = s.ok(&["device", "show", &serials[0]]);
        assert!(
            detail.contains("Assignment history") && detail.contains("success"),
            "{detail}"
        );
        let gone = s.ok(&["device", "delete", &serials[0]]);
        assert!(gone.contains("next full sync brings it back"), "{gone}");
        assert!(s.fails(&["device", "show", &serials[0]]).contains("device_not_found"));
        let (status, _) = s.stop();
        assert!(status.success());
    }
}

/// Runs a CLI command against `s` with `input` on its standard input.
fn cli_with_stdin(s: &Serve, args: &[&str], input: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(s.data_dir.parent().unwrap())
        .env_remove("RUSSET_API_KEY")
        .env("RUSSET_SERVER", &s.url)
        .env("RUSSET_DATA_DIR", &s.data_dir)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("russet runs");
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

#[test]
fn users_through_the_cli() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for db in rt.block_on(TestDb::all("cli::users_through_the_cli")) {
        let s = Serve::start(&db, NO_APPLE, &[]);
        let out = cli_with_stdin(
            &s,
            &[
                "user",
                "create",
                "Jane.Doe",
                "--display-name",
                "Jane Doe",
                "--email",
                "jane@example.com",
                "--password-stdin",
            ],
            Some("correct horse battery\n"),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains("(\"Jane.Doe\") created"), "{stdout}");

        // No password and no terminal to ask on: refused with what to do.
        let out = cli_with_stdin(&s, &["user", "create", "john"], None);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));
        // The server's checks come back as messages.
        let out = cli_with_stdin(&s, &["user", "create", "john", "--password-stdin"], Some("short\n"));
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("at least 10 characters") && err.contains("invalid_user"),
            "{err}"
        );
        let out = cli_with_stdin(
            &s,
            &["user", "create", "JANE.DOE", "--password-stdin"],
            Some("correct horse battery"),
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("username_taken"));

        // List and show (by username, any case, or by id); never a hash.
        let list = s.ok(&["user", "list"]);
        assert!(list.contains("Jane.Doe") && list.contains("active"), "{list}");
        let shown = s.json(&["user", "show", "jane.doe"]);
        let id = shown["id"].as_i64().unwrap().to_string();
        assert_eq!(shown["email"], "jane@example.com");
        assert_eq!(s.json(&["user", "show", &id])["username"], "Jane.Doe");
        assert!(!shown.to_string().contains("argon2"));
        assert!(s.fails(&["user", "show", "nobody"]).contains("no user named"));

        // Update, disable, enable.
        let u = s.json(&["user", "update", "jane.doe", "--no-email", "--disable"]);
        assert_eq!(
            (u["email"].clone(), u["status"].clone()),
            (Value::Null, "disabled".into())
        );
        assert!(s.fails(&["user", "update", "jane.doe"]).contains("nothing to change"));
        let out = s.ok(&["user", "update", &id, "--enable", "--display-name", "J. Doe"]);
        assert!(out.contains("J. Doe") && out.contains("active"), "{out}");

        // A new password; unlock; delete.
        let out = cli_with_stdin(
            &s,
            &["user", "set-password", "jane.doe", "--password-stdin"],
            Some("a brand new passphrase\r\n"),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("New password set for Jane.Doe"));
        assert!(s.ok(&["user", "unlock", "jane.doe"]).contains("is unlocked"));
        assert!(s.ok(&["user", "delete", "jane.doe"]).contains("deleted"));
        assert!(s.ok(&["user", "list", "--json"]).contains("\"users\": []"));
    }
}

#[test]
fn apps_and_books_tokens_and_status_through_the_cli() {
    let apple = Apple::start();
    let db = TestDb::sqlite();
    let vpp_url = format!("{}/mdm/v2", apple.url());
    let s = Serve::start(&db, &apple.url(), &[("RUSSET_APPLE_VPP_URL", &vpp_url)]);
    let dir = db.path();
    let now = apple.sim.clock().now();

    // Nothing yet: all fine.
    let out = s.cli(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("No Apple credentials yet"));

    // A token expiring in 20 days: a warning, exit 0 unless --fail-on warning.
    let paris = apple.sim.create_vpp_location(apple.org, "Paris Office");
    apple
        .sim
        .add_vpp_asset(paris, applesim::VppAssetSpec::app("361309726", 10))
        .unwrap();
    let file = apple
        .sim
        .download_vpp_token_expiring(paris, now + time::Duration::days(20))
        .unwrap();
    let path = write(dir, "paris.vpptoken", file.as_bytes());
    let out = s.ok(&["vpp-token", "upload", "--file", &path, "--apple-id", "apps@example.com"]);
    assert!(out.contains("Added token 1."), "{out}");
    let synced = s.ok(&["vpp-token", "sync", "1"]);
    assert!(synced.contains("Synced: 1 apps and books"), "{synced}");
    let list = s.ok(&["vpp-token", "list"]);
    assert!(list.contains("Paris Office") && list.contains("expiring"), "{list}");
    let apps = s.json(&["vpp-token", "apps"]);
    assert_eq!(apps["assets"][0]["adam_id"], "361309726");
    let out = s.cli(&["status"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning") && text.contains("russet vpp-token renew 1"),
        "{text}"
    );
    assert_eq!(s.cli(&["status", "--fail-on", "warning"]).status.code(), Some(1));

    // The same location again as a new token: refused, pointing at the renewal.
    let again = apple.sim.download_vpp_token(paris).unwrap();
    let again_path = write(dir, "paris2.vpptoken", again.as_bytes());
    let err = s.fails(&["vpp-token", "upload", "--file", &again_path]);
    assert!(err.contains("russet vpp-token renew 1"), "{err}");

    // A token expiring in 5 days: critical, exit 2, for cron.
    let lyon = apple.sim.create_vpp_location(apple.org, "Lyon Office");
    let file = apple
        .sim
        .download_vpp_token_expiring(lyon, now + time::Duration::days(5))
        .unwrap();
    let path = write(dir, "lyon.vpptoken", file.as_bytes());
    s.ok(&["vpp-token", "upload", "--file", &path]);
    let out = s.cli(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    let report = s.cli(&["status", "--json"]);
    assert_eq!(report.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(v["severity"], "critical");
    assert_eq!(v["credentials"][0]["status"], "critical", "worst first: {v}");

    // Renewing both brings it back to 0; deleting needs --confirm when apps go with it.
    let out = s.ok(&["vpp-token", "renew", "1", "--file", &again_path]);
    assert!(out.contains("Renewed in place"), "{out}");
    let lyon_new = apple.sim.download_vpp_token(lyon).unwrap();
    let lyon_path = write(dir, "lyon2.vpptoken", lyon_new.as_bytes());
    s.ok(&["vpp-token", "renew", "2", "--file", &lyon_path]);
    assert_eq!(s.cli(&["status"]).status.code(), Some(0));
    s.ok(&["vpp-token", "sync", "1"]);
    let err = s.fails(&["vpp-token", "delete", "1"]);
    assert!(err.contains("--confirm") && err.contains("361309726"), "{err}");
    let out = s.ok(&["vpp-token", "delete", "1", "--confirm"]);
    assert!(out.contains("Deleted."), "{out}");

    // A server that cannot be asked: exit 3.
    let (status, _) = s.stop();
    assert!(status.success());
    let out = cli_in(
        dir,
        &["status", "--server", "http://127.0.0.1:9"],
        &[("RUSSET_API_KEY", "x")],
    );
    assert_eq!(out.status.code(), Some(3));
}
