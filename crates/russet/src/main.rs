//! `russet`: the server (`russet serve`) and the command line that administers it. Apart
//! from `serve`, `admin-key rotate` and `ade-token inspect`, which work locally, every
//! command is a client of the admin API, so the CLI can do nothing the API cannot.

mod ade_token;
mod cli;
mod client;
mod demo;
mod device;
mod mdm;
mod output;
mod profile;
mod push_cert;
mod user;
mod vpp;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use russet_core::{Actor, SystemClock};
use russet_server::config::{Config, Loader, LogFormat};
use russet_server::serve::{self, StartOptions};
use secrecy::{ExposeSecret, SecretString};
use tracing_subscriber::EnvFilter;

use crate::cli::{AdminKeyCommand, Cli, Command, LocalArgs, ServeArgs};
use crate::client::ApiFailure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(vpp::StatusExit(code)) = e.downcast_ref::<vpp::StatusExit>() {
                return ExitCode::from(*code);
            }
            match e.downcast_ref::<ApiFailure>() {
                Some(api) => eprintln!("error: {api}"),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve_command(args).await,
        Command::Demo(args) => {
            let config = Config::default();
            init_logging(&Config {
                log_level: std::env::var("RUSSET_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
                ..config
            })?;
            demo::run(args).await
        }
        Command::AdminKey(AdminKeyCommand::Rotate { local, print }) => rotate(local, print).await,
        Command::AdeToken(cmd) => ade_token::run(cmd).await,
        Command::PushCert(cmd) => push_cert::run(cmd).await,
        Command::EnrollmentLink(cmd) => mdm::run_links(cmd).await,
        Command::Commands(cmd) => mdm::run_commands(cmd).await,
        Command::Enrollment(cmd) => mdm::run_enrollments(cmd).await,
        Command::Profile(cmd) => profile::run(cmd).await,
        Command::Device(cmd) => device::run(cmd).await,
        Command::User(cmd) => user::run(cmd).await,
        Command::VppToken(cmd) => vpp::run(cmd).await,
        Command::Status(args) => vpp::status(args).await,
    }
}

/// The configuration from the file, the environment and the flags given.
fn load_config(local: &LocalArgs, flags: &[(&str, Option<&str>)]) -> Result<Config> {
    let mut loader = Loader::new(local.config.as_deref())?
        .env(|k| std::env::var(k).ok())?
        .flag("data_dir", local.data_dir.as_deref())?
        .flag("database_url", local.database_url.as_deref())?;
    for (key, value) in flags {
        loader = loader.flag(key, *value)?;
    }
    Ok(loader.finish()?)
}

fn master_key_from_env() -> Option<SecretString> {
    std::env::var("RUSSET_MASTER_KEY")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(SecretString::from)
}

fn init_logging(config: &Config) -> Result<()> {
    let filter = EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("log_level \"{}\" is not a valid filter", config.log_level))?;
    // Colours only on a terminal: a log redirected to a file or a journal stays plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

async fn serve_command(args: ServeArgs) -> Result<()> {
    let config = load_config(
        &args.local,
        &[
            ("listen", args.listen.as_deref()),
            ("public_url", args.public_url.as_deref()),
            ("tls.cert", args.tls_cert.as_deref()),
            ("tls.key", args.tls_key.as_deref()),
            ("log_format", args.log_format.as_deref()),
            ("log_level", args.log_level.as_deref()),
            ("apple.dep_url", args.apple_dep_url.as_deref()),
        ],
    )?;
    init_logging(&config)?;
    let options = StartOptions {
        master_key: master_key_from_env(),
        clock: Arc::new(SystemClock),
    };
    serve::run(&config, options).await?;
    Ok(())
}

async fn rotate(local: LocalArgs, print: bool) -> Result<()> {
    let config = load_config(&local, &[])?;
    let options = StartOptions {
        master_key: master_key_from_env(),
        clock: Arc::new(SystemClock),
    };
    let opened = serve::open(&config, &options).await?;
    let (new, revoked) = opened
        .core
        .admin_key_rotate(&Actor::local("russet admin-key rotate"))
        .await?;
    let path = serve::write_admin_key(&config.data_dir, &new.secret)?;
    opened.core.store.close().await;
    eprintln!(
        "Revoked {revoked} admin API key{}; the new key (prefix {}) is in {}. Running servers accept it at once.",
        if revoked == 1 { "" } else { "s" },
        new.key.prefix,
        path.display()
    );
    if print {
        println!("{}", new.secret.expose_secret());
    }
    Ok(())
}
