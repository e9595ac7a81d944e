//! `applesim serve`: run the Apple ADE simulator as a stand-alone HTTP server (with
//! `--vpp`, an Apps and Books location and its token too).
//! `applesim devices`: the same, plus a fleet of simulated devices enrolled in an MDM server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use applesim::devices::{
    ActivationOptions, ActivationOutcome, Credentials, DeviceKind, Fleet, FleetOptions, FleetStats, SignIn, Status,
    parse_mix,
};
use applesim::{AppleSim, DeviceFamily, DeviceSpec, OrgId, OrgKind, ServerId, VppAssetSpec, VppLocationId};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "applesim",
    version,
    about = "Simulator of Apple's side of device management: ABM and the DEP API, Apps and Books, push certificates, APNs, devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once per run: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Serve the DEP API (at the root), the Apps and Books API v2 (under /mdm/v2), the admin
    /// API (under /abm), and APNs.
    ///
    /// With --vpp, the default organisation gets an Apps and Books location "Example
    /// Location" with three apps and a book, and its location token (the content of a
    /// .vpptoken file) is printed, or written to --vpp-token-file: give it to your MDM
    /// server with the base URL http://LISTEN/mdm/v2.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9800")]
        listen: SocketAddr,
        /// Address of the APNs listener (HTTP/2 over TLS with client certificates).
        #[arg(long, default_value = "127.0.0.1:9801")]
        apns_listen: SocketAddr,
        /// Devices to buy for the default organisation and assign to the default MDM server.
        #[arg(long, default_value_t = 0)]
        devices: usize,
        /// Create an Apps and Books location with sample assets and print its token.
        #[arg(long)]
        vpp: bool,
        /// Licences of each sample asset (with --vpp).
        #[arg(long, default_value_t = 10)]
        vpp_licenses: u32,
        /// Write the location token to this file (a .vpptoken) instead of printing it;
        /// implies --vpp.
        #[arg(long)]
        vpp_token_file: Option<PathBuf>,
    },
    /// Everything `serve` does, plus simulated iPhones, iPads and Macs that enroll in your MDM
    /// server through an enrollment link and answer its commands.
    ///
    /// APNs in applesim only accepts push certificates that this applesim's portal issued, and
    /// all of applesim's state is in memory: so this one process is both Apple (vendor
    /// certificates, push certificate portal, APNs) and the devices. Start it first; it
    /// prints what the MDM server needs from it:
    ///
    ///  1. its MDM vendor certificate from this process (POST /abm/vendor-certificate, and
    ///     /abm/vendor-chain), to sign push certificate requests;
    ///
    ///  2. APNs at --apns-listen, trusting /abm/apns-ca (for Russet: [apple] apns_url and
    ///     apns_ca_file); then start (or restart) the MDM server;
    ///
    ///  3. a push certificate from this process's portal (POST /abm/push-certificates),
    ///     installed in the MDM server; then an enrollment link.
    ///
    /// Give the link with --enroll-url, or paste it when asked (standard input). The
    /// devices poll it until it serves a profile, enroll (SCEP, Authenticate, TokenUpdate),
    /// then answer pushes until Ctrl-C. A summary line is printed every second, totals on
    /// exit. Restarting applesim makes a new Apple PKI and APNs CA: repeat steps 1 to 3.
    ///
    /// With --activate N there is no link: the devices are Apple Business Manager devices
    /// (--abm-devices, assigned to the MDM server) that activate through Automated Device
    /// Enrollment. Once the MDM server has synced them (its server token comes from this
    /// process) and assigned an ADE profile to N of them, those N activate like new devices
    /// in Setup Assistant: signed MachineInfo (the MDM server must trust the simulated device
    /// CA, printed at start), the sign-in page of configuration_web_url with --username and
    /// --password, the enrollment profile, SCEP, Authenticate, TokenUpdate, and
    /// DeviceConfigured when the profile awaits it. Each outcome is printed.
    Devices {
        /// The enrollment link (it must answer a .mobileconfig, application/x-apple-aspen-config);
        /// read from standard input when absent.
        #[arg(long, conflicts_with = "activate")]
        enroll_url: Option<String>,
        /// Activate this many ABM devices through Automated Device Enrollment instead of
        /// enrolling through a link (they wait until the MDM server assigned them a profile).
        #[arg(long)]
        activate: Option<usize>,
        /// Devices bought in ABM (kinds from --mix) and assigned to the MDM server at start;
        /// --activate's count when absent.
        #[arg(long)]
        abm_devices: Option<usize>,
        /// The user who signs in on configuration_web_url's page (with --activate).
        #[arg(long, requires = "password")]
        username: Option<String>,
        /// That user's password.
        #[arg(long, requires = "username")]
        password: Option<String>,
        /// How long a device whose profile has await_device_configured waits in Setup
        /// Assistant for DeviceConfigured before its outcome is printed as still waiting.
        #[arg(long, default_value_t = 300)]
        configured_timeout_secs: u64,
        /// Devices to enroll.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Kinds and weights, e.g. iphone=2,ipad=1,mac=1.
        #[arg(long, default_value = "iphone=2,ipad=1,mac=1")]
        mix: String,
        /// Probability (0-1) that a device answers NotNow to a command that allows it; it
        /// then connects again by itself after --not-now-retry-ms.
        #[arg(long, default_value_t = 0.0)]
        not_now_rate: f64,
        /// Delay before a device that said NotNow connects again, in milliseconds.
        #[arg(long, default_value_t = 3000)]
        not_now_retry_ms: u64,
        /// Share this many RSA keys among the devices instead of one per device (key
        /// generation takes minutes for thousands of devices on a small machine).
        #[arg(long)]
        key_pool: Option<usize>,
        /// Enrollments and connects in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Extra CA certificates (PEM) to trust for https:// MDM and SCEP URLs.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// On Ctrl-C, every enrolled device checks out (CheckOut) before exiting.
        #[arg(long)]
        checkout_on_exit: bool,
        /// Address of the DEP and admin listener.
        #[arg(long, default_value = "127.0.0.1:9800")]
        listen: SocketAddr,
        /// Address of the APNs listener (the MDM server pushes here).
        #[arg(long, default_value = "127.0.0.1:9801")]
        apns_listen: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            apns_listen,
            devices,
            vpp,
            vpp_licenses,
            vpp_token_file,
        } => match serve(
            listen,
            apns_listen,
            devices,
            VppArgs {
                enabled: vpp || vpp_token_file.is_some(),
                licenses: vpp_licenses,
                token_file: vpp_token_file,
            },
        )
        .await
        {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("applesim: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Devices {
            enroll_url,
            activate,
            abm_devices,
            username,
            password,
            configured_timeout_secs,
            count,
            mix,
            not_now_rate,
            not_now_retry_ms,
            key_pool,
            concurrency,
            ca_file,
            checkout_on_exit,
            listen,
            apns_listen,
        } => {
            let opts = (|| -> Result<FleetOptions, String> {
                let extra_ca_pem = match &ca_file {
                    Some(p) => Some(std::fs::read(p).map_err(|e| format!("--ca-file {}: {e}", p.display()))?),
                    None => None,
                };
                Ok(FleetOptions {
                    mix: parse_mix(&mix).map_err(|e| e.to_string())?,
                    not_now_rate,
                    not_now_retry: Duration::from_millis(not_now_retry_ms),
                    key_pool,
                    concurrency,
                    extra_ca_pem,
                    ..FleetOptions::default()
                })
            })();
            let result = match opts {
                Ok(opts) => {
                    let activation = activate.map(|n| Activate {
                        count: n,
                        abm_devices: abm_devices.unwrap_or(n),
                        opts: ActivationOptions {
                            credentials: match (username, password) {
                                (Some(u), Some(p)) => Credentials::All(SignIn::new(u, p)),
                                _ => Credentials::None,
                            },
                            wait_configured: Some(Duration::from_secs(configured_timeout_secs)),
                        },
                    });
                    devices(DevicesArgs {
                        enroll_url,
                        activation,
                        count,
                        opts,
                        checkout_on_exit,
                        listen,
                        apns_listen,
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("applesim: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

/// `--activate`: ADE instead of a link.
struct Activate {
    count: usize,
    abm_devices: usize,
    opts: ActivationOptions,
}

struct DevicesArgs {
    enroll_url: Option<String>,
    activation: Option<Activate>,
    count: usize,
    opts: FleetOptions,
    checkout_on_exit: bool,
    listen: SocketAddr,
    apns_listen: SocketAddr,
}

fn summary(s: &FleetStats) -> String {
    format!(
        "enrolled {} (failed {}), wakes {}, connects {}, commands: acknowledged {} error {} format-error {} not-now {}, errors {}",
        s.enrolled,
        s.enroll_failures,
        s.wakes,
        s.connects,
        s.commands_with(Status::Acknowledged),
        s.commands_with(Status::Error),
        s.commands_with(Status::CommandFormatError),
        s.commands_with(Status::NotNow),
        s.errors,
    )
}

/// Buy `n` devices with kinds from the mix and assign them to `server`.
fn buy_devices(
    sim: &AppleSim,
    org: applesim::OrgId,
    server: ServerId,
    n: usize,
    mix: &[(DeviceKind, u32)],
) -> Result<(), String> {
    let cycle: Vec<DeviceKind> = mix
        .iter()
        .flat_map(|(k, w)| std::iter::repeat_n(*k, *w as usize))
        .collect();
    for kind in [DeviceKind::IPhone, DeviceKind::IPad, DeviceKind::Mac] {
        let count = (0..n)
            .filter(|i| cycle.get(i % cycle.len().max(1)) == Some(&kind))
            .count();
        let family = match kind {
            DeviceKind::IPhone => DeviceFamily::IPhone,
            DeviceKind::IPad => DeviceFamily::IPad,
            DeviceKind::Mac => DeviceFamily::Mac,
        };
        let serials = sim.add_devices(org, count, DeviceSpec { family: Some(family) });
        sim.assign_devices(server, &serials).map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn devices(a: DevicesArgs) -> Result<(), String> {
    let sim = AppleSim::new();
    let org = sim.create_org("Example Org", OrgKind::Business);
    let server = sim.create_mdm_server(org, "Example MDM Server");
    if let Some(act) = &a.activation {
        buy_devices(&sim, org, server, act.abm_devices, &a.opts.mix)?;
    }
    let running = sim
        .serve_with_apns(a.listen, a.apns_listen)
        .await
        .map_err(|e| format!("listening: {e}"))?;
    let b = &running.base_url;
    println!("applesim listening on {b} (DEP and admin API; organisation {org}, MDM server {server})");
    println!("  APNs base URL: {}  (HTTP/2 + TLS)", running.apns_url);
    // The device CA: what an MDM server checks MachineInfo signatures against (ADE).
    let device_ca = {
        let sim = sim.clone();
        tokio::task::spawn_blocking(move || sim.device_ca_root_pem())
            .await
            .map_err(|e| format!("device CA: {e}"))?
    };
    let device_ca_path = std::env::temp_dir().join(format!("applesim-device-ca-{}.pem", std::process::id()));
    match std::fs::write(&device_ca_path, &device_ca) {
        Ok(()) => println!(
            "  device CA (signs the devices' MachineInfo): {}  (also: curl {b}/abm/device-ca)",
            device_ca_path.display()
        ),
        Err(e) => println!(
            "  device CA: curl {b}/abm/device-ca  (writing {}: {e})",
            device_ca_path.display()
        ),
    }
    println!();
    let apns = &running.apns_url;
    println!("What the MDM server needs from THIS applesim process (its state is in memory):");
    println!("  1. an MDM vendor certificate, to sign push certificate requests:");
    println!(
        "       openssl req -new -newkey rsa:2048 -nodes -keyout vendor.key -subj '/O=Example/CN=Example' -out vendor.csr"
    );
    println!("       curl --data-binary @vendor.csr {b}/abm/vendor-certificate > vendor.pem");
    println!("       curl {b}/abm/vendor-chain > vendor-chain.pem");
    println!("  2. APNs: push to {apns}, trusting: curl {b}/abm/apns-ca > apns-ca.pem");
    println!("     Russet: [apple] apns_url = \"{apns}\", apns_ca_file = \"apns-ca.pem\";");
    println!("             [mdm] vendor_certificate_file = \"vendor.pem\", vendor_key_file = \"vendor.key\",");
    println!("                   vendor_chain_file = \"vendor-chain.pem\"; then start russet serve");
    println!("  3. a push certificate from this portal, installed in the MDM server:");
    println!("       russet push-cert csr --request-out push.b64");
    println!(
        "       curl -d \"{{\\\"apple_id\\\":\\\"admin@example.com\\\",\\\"request\\\":\\\"$(cat push.b64)\\\"}}\" {b}/abm/push-certificates"
    );
    println!(
        "       (save certificate_pem as push.pem)  russet push-cert upload --file push.pem --apple-id admin@example.com"
    );
    if let Some(act) = a.activation {
        println!(
            "  4. the ADE server token of MDM server {server} ({} devices assigned to it):",
            act.abm_devices
        );
        println!("       curl -X PUT --data-binary @mdm-cert.pem {b}/abm/servers/{server}/public-key");
        println!("       curl -X POST -o token_smime.p7m {b}/abm/servers/{server}/token");
        println!("     with DEP base URL {b}; trust the device CA above for MachineInfo; sync, then");
        println!("     assign an ADE profile to at least {} of the devices.", act.count);
        println!();
        let fleet = Arc::new(Fleet::new(sim.clone(), a.opts).map_err(|e| e.to_string())?);
        let Some(serials) = wait_for_profiles(&sim, server, act.count).await else {
            running.shutdown().await;
            return Ok(());
        };
        println!("activating {} devices", serials.len());
        let job = {
            let fleet = fleet.clone();
            tokio::spawn(async move { activate_all(&fleet, serials, act.opts).await })
        };
        return run_until_signal(fleet, job, a.checkout_on_exit, running).await;
    }
    println!("     then an enrollment link:  russet enrollment-link create --name 'Simulated devices'");
    println!();
    let enroll_url = match a.enroll_url.clone() {
        Some(u) => u,
        None => {
            println!("Paste the enrollment link and press Enter:");
            let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
            loop {
                tokio::select! {
                    _ = wait_for_signal() => {
                        running.shutdown().await;
                        return Ok(());
                    }
                    line = lines.next_line() => match line {
                        Ok(Some(l)) if !l.trim().is_empty() => break l.trim().to_owned(),
                        Ok(Some(_)) => continue,
                        Ok(None) => return Err("standard input ended before an enrollment link was given (use --enroll-url)".into()),
                        Err(e) => return Err(format!("reading standard input: {e}")),
                    }
                }
            }
        }
    };
    let fleet = Arc::new(Fleet::new(sim.clone(), a.opts).map_err(|e| e.to_string())?);
    let http = reqwest::Client::new();
    // Wait until the link serves a profile (no push certificate yet answers an error).
    let mut said = String::new();
    loop {
        let state = match http.get(&enroll_url).send().await {
            Ok(r) if r.status().is_success() => break,
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                format!("HTTP {status}: {}", body.chars().take(200).collect::<String>())
            }
            Err(e) => format!("{e}"),
        };
        if state != said {
            println!("waiting for {enroll_url} to serve a profile ({state})");
            said = state;
        }
        tokio::select! {
            _ = wait_for_signal() => {
                running.shutdown().await;
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
    println!("enrolling {} devices through {enroll_url}", a.count);
    let enrolling = {
        let fleet = fleet.clone();
        let url = enroll_url.clone();
        let n = a.count;
        tokio::spawn(async move {
            let report = fleet.enroll(&url, n).await;
            format!(
                "enrollment done: {} enrolled, {} failed; devices now answer pushes (Ctrl-C to stop)",
                report.enrolled.len(),
                report.failed.len()
            )
        })
    };
    run_until_signal(fleet, enrolling, a.checkout_on_exit, running).await
}

/// Wait until `n` of the server's iPhones, iPads and Macs have an ADE profile; their
/// serials (`None` on Ctrl-C).
async fn wait_for_profiles(sim: &AppleSim, server: ServerId, n: usize) -> Option<Vec<String>> {
    let mut said = usize::MAX;
    loop {
        let ready: Vec<String> = sim
            .server_devices(server)
            .into_iter()
            .filter(|d| d.profile_uuid.is_some() && matches!(d.device_family.as_str(), "iPhone" | "iPad" | "Mac"))
            .map(|d| d.serial_number)
            .take(n)
            .collect();
        if ready.len() >= n {
            return Some(ready);
        }
        if ready.len() != said {
            println!("waiting for an ADE profile on {n} devices ({} have one)", ready.len());
            said = ready.len();
        }
        tokio::select! {
            _ = wait_for_signal() => return None,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Activate `serials` (the fleet's concurrency at a time), printing each outcome as it comes.
async fn activate_all(fleet: &Arc<Fleet>, serials: Vec<String>, opts: ActivationOptions) -> String {
    let mut set = tokio::task::JoinSet::new();
    for serial in serials {
        let fleet = fleet.clone();
        let opts = opts.clone();
        set.spawn(async move { fleet.activate(std::slice::from_ref(&serial), &opts).await.outcomes });
    }
    let (mut enrolled, mut configured, mut waiting, mut refused, mut not_ade) = (0, 0, 0, 0, 0);
    while let Some(r) = set.join_next().await {
        for o in r.unwrap_or_default() {
            println!("  {o}");
            match &o {
                ActivationOutcome::Enrolled { configured: c, .. } => {
                    enrolled += 1;
                    match c {
                        applesim::devices::Configured::At(_) => configured += 1,
                        applesim::devices::Configured::Waiting => waiting += 1,
                        applesim::devices::Configured::NotRequested => {}
                    }
                }
                ActivationOutcome::Refused { .. } => refused += 1,
                ActivationOutcome::NotAde { .. } => not_ade += 1,
            }
        }
    }
    format!(
        "activation done: {enrolled} enrolled ({configured} configured, {waiting} still waiting for DeviceConfigured), {refused} refused, {not_ade} not in ADE; devices now answer pushes (Ctrl-C to stop)"
    )
}

/// Print a summary every second (and the job's last line when it ends) until Ctrl-C, then
/// check out if asked and stop.
async fn run_until_signal(
    fleet: Arc<Fleet>,
    job: tokio::task::JoinHandle<String>,
    checkout_on_exit: bool,
    running: applesim::RunningSim,
) -> Result<(), String> {
    let started = Instant::now();
    let mut enrolling = Some(job);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut seen_errors = 0u64;
    let signal = wait_for_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = tick.tick() => {
                let s = fleet.stats();
                println!("[{:>5}s] {}", started.elapsed().as_secs(), summary(&s));
                if s.errors > seen_errors {
                    let new = (s.errors - seen_errors) as usize;
                    for e in s.recent_errors.iter().rev().take(new.min(3)).rev() {
                        println!("        error: {e}");
                    }
                    seen_errors = s.errors;
                }
                if enrolling.as_ref().is_some_and(|h| h.is_finished())
                    && let Some(Ok(line)) = match enrolling.take() {
                        Some(h) => Some(h.await),
                        None => None,
                    }
                {
                    println!("{line}");
                }
            }
        }
    }
    println!();
    if checkout_on_exit {
        let n = fleet.checkout_all().await;
        println!("{n} devices checked out");
    }
    fleet.shutdown();
    println!("totals: {}", summary(&fleet.stats()));
    running.shutdown().await;
    Ok(())
}

/// `serve`'s Apps and Books options.
struct VppArgs {
    enabled: bool,
    licenses: u32,
    token_file: Option<PathBuf>,
}

/// The sample location of `serve --vpp`: Pages, Numbers, Keynote and a book.
fn vpp_location(sim: &AppleSim, org: OrgId, licenses: u32) -> Result<(VppLocationId, String), applesim::SimError> {
    let loc = sim.try_create_vpp_location(org, "Example Location")?;
    for adam_id in ["361309726", "361304891", "361285480"] {
        sim.add_vpp_asset(loc, VppAssetSpec::app(adam_id, licenses))?;
    }
    sim.add_vpp_asset(loc, VppAssetSpec::book("1058120411", licenses))?;
    let token = sim.download_vpp_token(loc)?;
    Ok((loc, token))
}

async fn serve(listen: SocketAddr, apns_listen: SocketAddr, devices: usize, vpp: VppArgs) -> std::io::Result<()> {
    let sim = AppleSim::new();
    let org = sim.create_org("Example Org", OrgKind::Business);
    let server = sim.create_mdm_server(org, "Example MDM Server");
    if devices > 0 {
        let serials = sim.add_devices(org, devices, DeviceSpec::default());
        sim.assign_devices(server, &serials).map_err(std::io::Error::other)?;
    }
    let location = if vpp.enabled {
        let (loc, token) = vpp_location(&sim, org, vpp.licenses).map_err(std::io::Error::other)?;
        if let Some(path) = &vpp.token_file {
            std::fs::write(path, format!("{token}\n")).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot write the token to {}: {e}", path.display()))
            })?;
        }
        Some((loc, token))
    } else {
        None
    };
    let running = sim.serve_with_apns(listen, apns_listen).await?;
    let b = &running.base_url;
    let a = &running.apns_url;
    println!("applesim listening on {b}");
    println!("  DEP API base URL:  {b}");
    println!("  APNs base URL:     {a}  (HTTP/2 + TLS; trust {b}/abm/apns-ca, present a push certificate)");
    println!("  admin API:         {b}/abm/…  (organisation {org}, MDM server {server}, {devices} devices assigned)");
    println!();
    println!("Get a server token for your MDM server:");
    println!("  curl -X PUT --data-binary @mdm-cert.pem {b}/abm/servers/{server}/public-key");
    println!("  curl -X POST -o token_smime.p7m {b}/abm/servers/{server}/token");
    println!("  curl {b}/abm/servers/{server}/credentials        # the plaintext credentials");
    println!("More devices, assignment, clock and faults:");
    println!("  curl -X POST -d '{{\"count\":100}}' {b}/abm/orgs/{org}/devices");
    println!("  curl -X POST -d '{{\"serials\":[\"…\"]}}' {b}/abm/servers/{server}/devices");
    println!("  curl -X POST -d '{{\"advance_seconds\":86400}}' {b}/abm/clock");
    println!(
        "  curl -X POST -d '{{\"endpoint\":\"fetch_devices\",\"faults\":[{{\"count\":1,\"kind\":\"too_many_requests\",\"retry_after_seconds\":30}}]}}' {b}/abm/faults"
    );
    println!("  curl {b}/abm/requests?last=20");
    println!("Push certificates and APNs:");
    println!("  curl --data-binary @vendor.csr {b}/abm/vendor-certificate > vendor.pem");
    println!("  curl {b}/abm/vendor-chain          # WWDR + root, to append after vendor.pem");
    println!(
        "  curl -d '{{\"apple_id\":\"admin@example.com\",\"request\":\"<base64 plist>\"}}' {b}/abm/push-certificates"
    );
    println!("  curl -d '{{\"topic\":\"com.apple.mgmt.External.…\"}}' {b}/abm/push-tokens");
    println!("  curl {b}/abm/pushes?last=20");
    let v = &running.vpp_url;
    match &location {
        Some((loc, token)) => {
            let uid = sim.vpp_location(*loc).map(|l| l.uid).unwrap_or_default();
            println!(
                "Apps and Books (VPP) API v2: {v}  (location {loc} \"Example Location\", uId {uid}, 3 apps and 1 book, {} licences each)",
                vpp.licenses
            );
            match &vpp.token_file {
                Some(path) => println!("  location token written to {}", path.display()),
                None => println!("  location token (.vpptoken content):\n{token}"),
            }
            let t = match &vpp.token_file {
                Some(path) => format!("$(cat {})", path.display()),
                None => "<token>".to_owned(),
            };
            println!("  curl -H \"Authorization: Bearer {t}\" {v}/client/config");
            println!("  curl -X POST -o more.vpptoken {b}/abm/vpp-locations/{loc}/token   # another token");
            println!("  curl {b}/abm/vpp-locations/{loc}/assignments");
        }
        None => println!("Apps and Books (VPP) API v2: {v}  (start with --vpp for a location and its token)"),
    }
    println!("Stop with Ctrl-C.");

    wait_for_signal().await;
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
