//! `russet demo`: the whole product on a laptop with no Apple account.
//!
//! Starts applesim (Apple Business Manager, the push certificate portal, APNs and a fleet of
//! simulated devices, all in this process) and `russet serve` on SQLite in a temporary
//! directory wired to it, then walks through the story an administrator lives, printing each
//! step: the push certificate, an ADE token exchanged with ABM, a sync, a default profile with
//! user affinity that awaits configuration, devices activating through Setup Assistant, and
//! DeviceInformation sent to them. Each step is checked; with `--non-interactive` the command
//! exits (non-zero if a check failed), otherwise the server keeps running with its URL and
//! admin key printed until Ctrl-C.
//!
//! applesim is linked here for the demo only: Russet's domain still reaches it solely through
//! its configurable Apple URLs, as it reaches Apple.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use applesim::devices::{ActivationOptions, Credentials, Fleet, FleetOptions, SignIn};
use applesim::{AppleSim, DeviceFamily, DeviceSpec, OrgKind};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509NameBuilder, X509ReqBuilder};
use reqwest::Method;
use russet_core::SystemClock;
use russet_server::config::Config;
use russet_server::serve::{self, StartOptions};
use serde_json::{Value, json};

use crate::cli::DemoArgs;

const DEMO_USER: &str = "alex";
const DEMO_PASSWORD: &str = "demo password 1";

struct Api {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn put_bytes(&self, path: &str, body: Vec<u8>) -> Result<Value> {
        let resp = self
            .http
            .put(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .body(body)
            .send()
            .await
            .with_context(|| format!("PUT {path}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("PUT {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get_text(&self, path: &str) -> Result<String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        ensure!(resp.status().is_success(), "GET {path} answered {}", resp.status());
        Ok(resp.text().await?)
    }

    /// Follows a job to its end.
    async fn wait_job(&self, id: i64) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let job = self.call(Method::GET, &format!("/api/v1/jobs/{id}"), None).await?;
            if job["status"] != "running" {
                return Ok(job);
            }
            ensure!(Instant::now() < deadline, "job {id} did not finish in 10 minutes");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn step(n: usize, what: &str) {
    println!("\n{n}. {what}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// An MDM vendor certificate from applesim's portal (the key stays in the demo directory).
fn vendor_files(sim: &AppleSim, dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, "MDM Vendor: Russet demo")?;
    let mut req = X509ReqBuilder::new()?;
    req.set_subject_name(&name.build())?;
    req.set_pubkey(&key)?;
    req.sign(&key, MessageDigest::sha256())?;
    let csr = String::from_utf8(req.build().to_pem()?)?;
    let cert = sim
        .issue_vendor_certificate(&csr)
        .map_err(|e| anyhow!("applesim's portal refused the vendor CSR: {e:?}"))?;
    Ok((
        write(dir, "vendor.pem", cert.as_bytes())?,
        write(dir, "vendor.key", &key.private_key_to_pem_pkcs8()?)?,
        write(dir, "vendor-chain.pem", sim.vendor_chain_pem().as_bytes())?,
    ))
}

pub async fn run(args: DemoArgs) -> Result<()> {
    ensure!(
        args.devices >= 1 && args.devices <= 100_000,
        "--devices must be 1 to 100,000"
    );
    ensure!(
        args.activate <= args.devices,
        "--activate ({}) cannot exceed --devices ({})",
        args.activate,
        args.devices
    );
    let temp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("russet-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    println!("Russet demo: everything Apple does is played by applesim, in this process.");
    println!("Working directory: {}", dir.display());

    // Apple's side.
    let sim = AppleSim::new();
    let apple = sim
        .serve("127.0.0.1:0".parse()?)
        .await
        .map_err(|e| anyhow!("applesim cannot listen: {e}"))?;
    let (vendor_cert, vendor_key, vendor_chain) = vendor_files(&sim, &dir)?;
    let apns_ca = write(&dir, "apns-ca.pem", sim.apns_ca_pem().as_bytes())?;
    let device_ca = write(&dir, "device-ca.pem", sim.device_ca_root_pem().as_bytes())?;

    // Russet, on SQLite in the demo directory.
    let mut config = Config {
        listen: args.listen.clone(),
        data_dir: dir.join("data"),
        ..Config::default()
    };
    config.apple.dep_url = apple.base_url.clone();
    config.apple.apns_url = apple.apns_url.clone();
    config.apple.apns_ca_file = Some(apns_ca);
    config.apple.device_ca_file = Some(device_ca);
    config.mdm.organization = "Demo Org".into();
    config.mdm.vendor_certificate_file = Some(vendor_cert);
    config.mdm.vendor_key_file = Some(vendor_key);
    config.mdm.vendor_chain_file = Some(vendor_chain);
    let server = serve::start(
        &config,
        StartOptions {
            master_key: None,
            clock: Arc::new(SystemClock),
        },
    )
    .await?;
    let key_file = config.data_dir.join("admin-api-key");
    let key = std::fs::read_to_string(&key_file)
        .with_context(|| format!("reading {}", key_file.display()))?
        .trim()
        .to_string();
    let api = Api {
        http: reqwest::Client::new(),
        url: server.public_url.clone(),
        key,
    };
    println!(
        "Russet is serving at {} (SQLite in {}).",
        api.url,
        config.data_dir.display()
    );
    let outcome = story(&args, &sim, &api).await;

    match &outcome {
        Ok(()) => println!("\nEvery step of the demo checked out."),
        Err(e) => println!("\nThe demo stopped: {e:#}"),
    }
    if args.non_interactive {
        apple.shutdown().await;
        server.shutdown().await?;
        return outcome;
    }
    println!(
        "\nRusset keeps running: {url}\n  admin API key: {key}\n  try: russet --help, or for example\n    \
         russet device list --server {url} --api-key {key}\n    \
         russet enrollment list --server {url} --api-key {key}\n    \
         curl -H 'Authorization: Bearer {key}' {url}/api/v1/enrollments\nPress Ctrl-C to stop (the demo directory \
         is then removed unless --dir was given).",
        url = api.url,
        key = api.key
    );
    tokio::signal::ctrl_c().await?;
    apple.shutdown().await;
    server.shutdown().await?;
    outcome
}

async fn story(args: &DemoArgs, sim: &AppleSim, api: &Api) -> Result<()> {
    step(
        1,
        "The MDM push certificate: Russet makes a key and a signed request; Apple's portal issues it",
    );
    let csr = api.call(Method::POST, "/api/v1/push-cert/csr", Some(json!({}))).await?;
    let request = csr["signed_request"]
        .as_str()
        .ok_or_else(|| anyhow!("Russet made no signed push certificate request: {csr}"))?;
    let issued = sim
        .push_portal_create("admin@demo.example", request)
        .map_err(|e| anyhow!("applesim's portal refused the request: {e:?}"))?;
    let cert = api
        .put_bytes(
            "/api/v1/push-cert?apple_id=admin@demo.example",
            issued.certificate_pem.into_bytes(),
        )
        .await?;
    println!(
        "   topic {}, valid until {}",
        cert["topic"].as_str().unwrap_or("?"),
        cert["expires_at"].as_str().unwrap_or("?")
    );

    step(
        2,
        &format!(
            "{} devices bought in Apple Business Manager and assigned to Russet's MDM server",
            args.devices
        ),
    );
    let org = sim.create_org("Demo Org", OrgKind::Business);
    let abm_server = sim.create_mdm_server(org, "Russet");
    let mut serials = Vec::with_capacity(args.devices);
    for (i, family) in [DeviceFamily::IPhone, DeviceFamily::IPad, DeviceFamily::Mac]
        .into_iter()
        .enumerate()
    {
        let count = args.devices / 3 + usize::from(i < args.devices % 3);
        serials.extend(sim.add_devices(org, count, DeviceSpec { family: Some(family) }));
    }
    sim.assign_devices(abm_server, &serials)
        .map_err(|e| anyhow!("ABM refused the assignment: {e:?}"))?;
    println!("   iPhones, iPads and Macs, a third each");

    step(
        3,
        "An ADE token: Russet's public key goes to that MDM server in ABM, its server token comes back, Russet syncs",
    );
    let t = Instant::now();
    let token = api
        .call(Method::POST, "/api/v1/ade-tokens", Some(json!({ "name": "Demo ABM" })))
        .await?;
    let token_id = token["id"].as_i64().ok_or_else(|| anyhow!("no token id in {token}"))?;
    let pem = api
        .get_text(&format!("/api/v1/ade-tokens/{token_id}/public-key"))
        .await?;
    sim.upload_public_key(abm_server, &pem)
        .map_err(|e| anyhow!("ABM refused the public key: {e:?}"))?;
    let p7m = sim
        .download_token(abm_server)
        .map_err(|e| anyhow!("ABM gave no server token: {e:?}"))?;
    let uploaded = api
        .put_bytes(
            &format!("/api/v1/ade-tokens/{token_id}/server-token?apple_id=admin@demo.example"),
            p7m,
        )
        .await?;
    println!(
        "   token {token_id}: {}",
        uploaded["result"].as_str().unwrap_or("uploaded")
    );
    // The upload starts the first sync by itself, in the background.
    let deadline = Instant::now() + Duration::from_secs(30);
    let job_id = loop {
        let jobs = api.call(Method::GET, "/api/v1/jobs?kind=sync", None).await?;
        let found = jobs["jobs"]
            .as_array()
            .and_then(|j| j.iter().find(|j| j["token_id"] == token_id))
            .and_then(|j| j["id"].as_i64());
        if let Some(id) = found {
            break id;
        }
        ensure!(
            Instant::now() < deadline,
            "the upload started no sync within 30 s: {jobs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let job = api.wait_job(job_id).await?;
    ensure!(job["status"] == "succeeded", "the sync did not succeed: {job}");
    let listed = api
        .call(
            Method::GET,
            &format!("/api/v1/devices?token_id={token_id}&limit=1"),
            None,
        )
        .await?;
    let total = listed["total"].as_u64().unwrap_or(0) as usize;
    println!("   {total} devices synced in {:.1} s", t.elapsed().as_secs_f64());
    ensure!(
        total == args.devices,
        "Russet synced {total} devices, not {}",
        args.devices
    );

    step(
        4,
        "A user, and a default profile with user affinity that keeps devices in Setup Assistant until configured",
    );
    api.call(
        Method::POST,
        "/api/v1/users",
        Some(json!({ "username": DEMO_USER, "display_name": "Alex Demo", "password": DEMO_PASSWORD })),
    )
    .await?;
    let profile = api
        .call(
            Method::POST,
            &format!("/api/v1/ade-tokens/{token_id}/profiles"),
            Some(
                json!({ "name": "Staff devices", "user_affinity": true, "await_device_configured": true,
                         "supervised": true, "device_name_template": "{{DEVICETYPE}}-{{SERIAL}}" }),
            ),
        )
        .await?;
    let pid = profile["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("no profile id in {profile}"))?;
    api.call(
        Method::PUT,
        &format!("/api/v1/ade-tokens/{token_id}/default-profile"),
        Some(json!({ "profile_id": pid })),
    )
    .await?;
    let job = api
        .call(
            Method::POST,
            &format!("/api/v1/profiles/{pid}/assign"),
            Some(json!({ "filter": "unassigned" })),
        )
        .await?;
    let job = api.wait_job(job["id"].as_i64().unwrap_or_default()).await?;
    ensure!(job["status"] == "succeeded", "the assignment did not succeed: {job}");
    println!(
        "   user \"{DEMO_USER}\" (password \"{DEMO_PASSWORD}\"); profile {pid} \"Staff devices\", the token's default, assigned: {}",
        job["message"].as_str().unwrap_or("")
    );

    step(
        5,
        &format!(
            "{} devices switched on: Setup Assistant, sign-in, enrollment, DeviceConfigured",
            args.activate
        ),
    );
    let fleet = Fleet::new(
        sim.clone(),
        FleetOptions {
            key_pool: Some(16),
            concurrency: 16,
            ..FleetOptions::default()
        },
    )
    .map_err(|e| anyhow!("cannot start the simulated devices: {e:?}"))?;
    let t = Instant::now();
    let chosen = &serials[..args.activate];
    let report = fleet
        .activate(
            chosen,
            &ActivationOptions {
                credentials: Credentials::All(SignIn::new(DEMO_USER, DEMO_PASSWORD)),
                wait_configured: Some(Duration::from_secs(120)),
            },
        )
        .await;
    for o in report.outcomes.iter().take(5) {
        println!("   {o}");
    }
    if report.outcomes.len() > 5 {
        println!("   … and {} more", report.outcomes.len() - 5);
    }
    println!(
        "   {} enrolled, {} released from Setup Assistant, in {:.1} s",
        report.enrolled(),
        report.configured(),
        t.elapsed().as_secs_f64()
    );
    ensure!(
        report.configured() == args.activate,
        "{} of {} devices did not finish setting up",
        args.activate - report.configured(),
        args.activate
    );

    step(
        6,
        "DeviceInformation to every enrolled device; APNs wakes them and they answer",
    );
    let udids: Vec<String> = fleet.devices().iter().map(|d| d.udid().to_string()).collect();
    let queued = api
        .call(
            Method::POST,
            "/api/v1/commands",
            Some(json!({ "targets": { "udids": udids }, "command": { "request_type": "DeviceInformation" } })),
        )
        .await?;
    let uuid = queued["command_uuid"]
        .as_str()
        .or_else(|| queued["uuid"].as_str())
        .ok_or_else(|| anyhow!("no command uuid in {queued}"))?
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        let st = api.call(Method::GET, &format!("/api/v1/commands/{uuid}"), None).await?;
        let acked = st["counts"]["Acknowledged"].as_u64().unwrap_or(0) as usize;
        if acked == udids.len() || Instant::now() >= deadline {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let acked = status["counts"]["Acknowledged"].as_u64().unwrap_or(0) as usize;
    println!("   {acked} of {} answered: {}", udids.len(), status["counts"]);
    ensure!(acked == udids.len(), "not every device answered DeviceInformation");
    if let Some(first) = udids.first() {
        let e = api
            .call(Method::GET, &format!("/api/v1/enrollments/{first}"), None)
            .await?;
        println!(
            "   for example {}: {} ({}), serial {}, user {}, OS {}",
            first,
            e["device_name"].as_str().unwrap_or("?"),
            e["product_name"].as_str().unwrap_or("?"),
            e["ade"]["serial_number"].as_str().unwrap_or("?"),
            e["ade"]["user"].as_str().unwrap_or("?"),
            e["os_version"].as_str().unwrap_or("?"),
        );
        ensure!(
            e["ade"]["user"] == DEMO_USER,
            "the enrollment is not bound to {DEMO_USER}: {e}"
        );
    }
    Ok(())
}
