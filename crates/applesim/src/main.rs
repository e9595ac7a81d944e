//! `applesim serve`: run the Apple ADE simulator as a stand-alone HTTP server.

use std::net::SocketAddr;

use applesim::{AppleSim, DeviceSpec, OrgKind};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "applesim",
    version,
    about = "Simulator of Apple's side of Automated Device Enrollment (ABM + DEP API)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the DEP API (at the root) and the admin API (under /abm), and APNs.
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
        } => match serve(listen, apns_listen, devices).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("applesim: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

async fn serve(listen: SocketAddr, apns_listen: SocketAddr, devices: usize) -> std::io::Result<()> {
    let sim = AppleSim::new();
    let org = sim.create_org("Example Org", OrgKind::Business);
    let server = sim.create_mdm_server(org, "Example MDM Server");
    if devices > 0 {
        let serials = sim.add_devices(org, devices, DeviceSpec::default());
        sim.assign_devices(server, &serials).map_err(std::io::Error::other)?;
    }
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
