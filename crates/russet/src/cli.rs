//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "russet",
    version,
    about = "Russet: enroll and manage an organisation's Apple devices",
    long_about = "Russet enrolls and manages Apple devices: enrollment program tokens with Apple Business Manager, \
        device sync, ADE enrollment profiles and their assignment; the MDM protocol, Apps and Books and User Enrollment \
        come in later releases.\n\n\
        `russet serve` runs the server; the other commands are clients of its admin API."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (SQLite in ./russet-data unless configured otherwise).
    Serve(ServeArgs),
    /// The whole product with no Apple account: Russet on SQLite in a temporary directory,
    /// with applesim playing Apple, walking through ADE from token to managed devices.
    Demo(DemoArgs),
    /// Manage the admin API key.
    #[command(subcommand)]
    AdminKey(AdminKeyCommand),
    /// Enrollment program (ADE) tokens exchanged with Apple Business Manager.
    #[command(subcommand)]
    AdeToken(AdeTokenCommand),
    /// ADE enrollment profiles: Setup Assistant settings, defined at Apple and assigned to devices.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Devices ABM assigned to Russet's tokens.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The MDM push certificate: make the CSR, upload Apple's certificate, renew it keeping its topic.
    #[command(subcommand)]
    PushCert(PushCertCommand),
    /// Enrollment links for devices outside ABM.
    #[command(subcommand)]
    EnrollmentLink(EnrollmentLinkCommand),
    /// MDM commands for enrolled devices.
    #[command(subcommand, name = "command")]
    Commands(CommandCommand),
    /// Enrolled devices (MDM enrollments).
    #[command(subcommand)]
    Enrollment(EnrollmentCommand),
    /// End users who sign in during Automated Device Enrollment (local accounts).
    #[command(subcommand)]
    User(UserCommand),
    /// Apps and Books (VPP) location tokens: upload, renew in place, sync of apps and licences.
    #[command(subcommand)]
    VppToken(VppTokenCommand),
    /// The health of every Apple credential (ADE tokens, push certificate, Apps and Books
    /// tokens). Exit status: 0 all fine (or warnings only), 1 warnings with --fail-on warning,
    /// 2 something critical or worse, 3 the server could not be asked. For cron and monitoring.
    Status(StatusArgs),
}

/// Options of `russet status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit non-zero from this severity on: `critical` (default) or `warning`.
    #[arg(long, value_name = "SEVERITY", default_value = "critical", value_parser = ["critical", "warning"])]
    pub fail_on: String,
    /// Also list the latest webhook notifications and their delivery.
    #[arg(long)]
    pub notifications: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How a `.vpptoken` is given.
#[derive(Debug, Args, Clone)]
pub struct VppFileArgs {
    /// The .vpptoken downloaded from Apple Business Manager (Preferences › Payments and Billing
    /// › Apps and Books).
    #[arg(long, value_name = "FILE.vpptoken")]
    pub file: PathBuf,
    /// The Managed Apple Account that downloaded it (needed to renew it next year).
    #[arg(long)]
    pub apple_id: Option<String>,
    /// The location is managed by another MDM: take it over (Russet's becomes the managing MDM).
    #[arg(long)]
    pub take_over: bool,
}

#[derive(Debug, Subcommand)]
pub enum VppTokenCommand {
    /// Add a location's token. A file for a location Russet already has is refused: renew that token.
    Upload {
        #[command(flatten)]
        file: VppFileArgs,
        /// Display name [default: the location's name].
        #[arg(long)]
        name: Option<String>,
        /// business (Apple Business Manager) or education (Apple School Manager).
        #[arg(long, default_value = "business")]
        account_type: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Renew a token in place with a new file for the same location (before or after it expired):
    /// same id, apps and assignments kept.
    Renew {
        id: i64,
        #[command(flatten)]
        file: VppFileArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tokens with status, expiry, owner and licence counts.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// One token in detail.
    Show {
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Sync a token's apps and books and their licence counts now.
    Sync {
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a token. With licences it is refused, saying what would go, unless --confirm.
    Delete {
        id: i64,
        /// Delete even though apps and licences go with it.
        #[arg(long)]
        confirm: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Apps and books, each once, with the licences of every token (or of one).
    Apps {
        /// Only this token's.
        #[arg(long)]
        token: Option<i64>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// How a command gets a password: from standard input, or asked twice on the terminal.
#[derive(Debug, Args, Clone)]
pub struct PasswordArgs {
    /// Read the password from standard input (one line; the newline is dropped) instead of
    /// asking for it on the terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a local user; the password is asked twice (hidden) unless --password-stdin.
    Create {
        /// 1-64 letters, digits, '.', '_', '-' or '@'; unique ignoring case.
        username: String,
        /// The person's name [default: the username].
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List users with their status (active, locked, disabled).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a user.
    Show {
        /// Username or id.
        user: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a user's display name or email, or disable or enable the account.
    Update {
        /// Username or id.
        user: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, conflicts_with = "no_email")]
        email: Option<String>,
        /// Remove the email address.
        #[arg(long)]
        no_email: bool,
        /// The user can no longer sign in.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// The user can sign in again.
        #[arg(long)]
        enable: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set a new password (asked twice, hidden, unless --password-stdin); clears a lock.
    SetPassword {
        /// Username or id.
        user: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Unlock a user locked by failed sign-ins.
    Unlock {
        /// Username or id.
        user: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a user.
    Delete {
        /// Username or id.
        user: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnrollmentLinkCommand {
    /// Create a link; its URL is printed once.
    Create {
        /// A name, e.g. "Loaner iPads".
        #[arg(long)]
        name: String,
        /// Days the link stays usable (1-365).
        #[arg(long, default_value_t = 30)]
        valid_days: i64,
        /// The link enrolls one device, then stops working.
        #[arg(long)]
        single_use: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List links with their status and use.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a link: its URL serves nothing any more.
    Revoke {
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CommandCommand {
    /// Queue a command for devices and push them.
    Send {
        /// Target by serial number (repeatable).
        #[arg(long = "serial", value_name = "SERIAL")]
        serials: Vec<String>,
        /// Target by UDID (repeatable).
        #[arg(long = "udid", value_name = "UDID")]
        udids: Vec<String>,
        /// A command without options: DeviceInformation, SecurityInfo, ProfileList,
        /// InstalledApplicationList, RestartDevice, DeviceConfigured.
        #[arg(long, value_name = "TYPE", conflicts_with_all = ["command_json", "plist"])]
        request_type: Option<String>,
        /// The typed command as JSON, e.g. '{"request_type":"DeviceLock","pin":"123456"}'.
        #[arg(long, value_name = "JSON", conflicts_with = "plist")]
        command_json: Option<String>,
        /// A raw command plist file (CommandUUID and Command).
        #[arg(long, value_name = "FILE")]
        plist: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Each device's status of a command.
    Show {
        uuid: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnrollmentCommand {
    /// List enrolled devices.
    List {
        /// Only this serial number.
        #[arg(long)]
        serial: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// One enrollment with its inventory.
    Show {
        /// Enrollment id (the UDID for a device).
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Let a device held in Setup Assistant (awaiting configuration) go on: DeviceConfigured
    /// is queued and pushed.
    Release {
        /// Enrollment id (the UDID for a device).
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PushCertCommand {
    /// Make a new key (kept in Russet) and CSR for the push certificate, or its renewal. With an
    /// MDM vendor identity configured, also the signed request for Apple's portal.
    Csr {
        /// Save the CSR (PEM) to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Save the signed request for Apple's push certificate portal to this file.
        #[arg(long, value_name = "FILE")]
        request_out: Option<PathBuf>,
        /// Show the CSR already waiting for its certificate instead of making a new one.
        #[arg(long)]
        pending: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Upload the certificate Apple's push certificate portal issued (first one or renewal).
    Upload {
        #[arg(long, value_name = "FILE.pem")]
        file: PathBuf,
        /// The Apple ID you used in Apple's portal (required the first time; renew with the same one).
        #[arg(long)]
        apple_id: Option<String>,
        /// Accept a certificate with a different topic: every enrolled device must then re-enroll.
        #[arg(long)]
        accept_topic_change: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show the push certificate: topic, expiry, Apple ID.
    Show {
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Where the configuration and data live (shared by `serve` and local commands).
#[derive(Debug, Args, Clone)]
pub struct LocalArgs {
    /// Configuration file (default: ./russet.toml when present).
    #[arg(long, env = "RUSSET_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory for SQLite, master.key and admin-api-key [default: ./russet-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data directory].
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub local: LocalArgs,
    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// The URL devices and browsers reach this server at.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// TLS certificate (chain) in PEM; requires --tls-key.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// TLS private key in PEM.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<String>,
    /// Log format: text or json.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or russet=debug.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Apple's device assignment API (e.g. an applesim URL) [default: https://mdmenrollment.apple.com].
    #[arg(long, value_name = "URL")]
    pub apple_dep_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminKeyCommand {
    /// Revoke every admin API key and create a new one, written to <data-dir>/admin-api-key.
    /// Runs on the server machine against the database directly, so it works when the key is lost.
    Rotate {
        #[command(flatten)]
        local: LocalArgs,
        /// Also print the new key on standard output.
        #[arg(long)]
        print: bool,
    },
}

/// How to reach the admin API.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// Russet's URL [default: the local server from russet.toml, else http://127.0.0.1:8080].
    #[arg(long, env = "RUSSET_SERVER", value_name = "URL", global = true)]
    pub server: Option<String>,
    /// Admin API key [default: <data-dir>/admin-api-key].
    #[arg(
        long,
        env = "RUSSET_API_KEY",
        value_name = "KEY",
        global = true,
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Data directory holding admin-api-key, when no key is given.
    #[arg(long, env = "RUSSET_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// A PEM CA certificate to trust for an HTTPS server with a private certificate.
    #[arg(long, env = "RUSSET_CA_CERT", value_name = "FILE", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AdeTokenCommand {
    /// Create a pending token and its key pair; then upload its public key to ABM.
    Create {
        /// A name to tell tokens apart, e.g. "ABM – Head office".
        #[arg(long)]
        name: String,
        /// Save the public key certificate (PEM) for ABM to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print or save the public key certificate (PEM) to upload to the MDM server in ABM.
    PublicKey {
        /// Token id or name.
        token: String,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Upload the first server token (.p7m) downloaded from ABM.
    Upload {
        /// Token id or name.
        token: String,
        #[arg(long, value_name = "FILE.p7m")]
        file: PathBuf,
        /// The Apple ID you downloaded the token with in ABM.
        #[arg(long)]
        apple_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Renew a token in place with a newly downloaded server token (same devices and profiles).
    Renew {
        /// Token id or name.
        token: String,
        #[arg(long, value_name = "FILE.p7m")]
        file: PathBuf,
        /// The Apple ID you downloaded the token with in ABM (it may differ from last year's).
        #[arg(long)]
        apple_id: String,
        /// Accept a token of a different ABM MDM server, or an older file (this token's devices may be lost).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List every token with its status and expiry.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one token.
    Show {
        /// Token id or name.
        token: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Sync the token's devices from Apple Business Manager now, showing progress.
    Sync {
        /// Token id or name.
        token: String,
        /// Refresh every device (at most once every 7 days; sooner, only new serials are added).
        #[arg(long)]
        full: bool,
        /// Start the sync and return without waiting for it.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a token and its key material (refused while it has devices or profiles).
    Delete {
        /// Token id or name.
        token: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Decrypt a server token file offline and describe it (no server needed).
    Inspect {
        /// The private key (PEM) whose certificate was uploaded to ABM.
        #[arg(long, value_name = "KEY.pem")]
        key: PathBuf,
        /// The certificate uploaded to ABM (PEM); checked against the token's recipient.
        #[arg(long, value_name = "CERT.pem")]
        cert: Option<PathBuf>,
        /// The server token file.
        file: PathBuf,
        /// Also print the OAuth secrets.
        #[arg(long)]
        show_secrets: bool,
        #[arg(long)]
        json: bool,
    },
}

/// Settings of a profile, as flags (`create` needs --name; `edit` changes only what is given).
#[derive(Debug, Args, Clone, Default)]
pub struct ProfileFlags {
    /// Shown in Setup Assistant (at most 125 characters).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Ask users to sign in during Setup Assistant (true/false).
    #[arg(long, value_name = "BOOL")]
    pub user_affinity: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    pub supervised: Option<bool>,
    /// Users cannot remove the management profile (needs supervised).
    #[arg(long, value_name = "BOOL")]
    pub locked_enrollment: Option<bool>,
    /// Keep devices in Setup Assistant until Russet has configured them.
    #[arg(long, value_name = "BOOL")]
    pub await_device_configured: Option<bool>,
    /// deny_all, allow or allow_with_certificates.
    #[arg(long)]
    pub pairing: Option<String>,
    /// PEM certificate file of a computer allowed to pair (repeat for more; up to 10).
    #[arg(long = "pairing-certificate", value_name = "FILE")]
    pub pairing_certificates: Vec<PathBuf>,
    #[arg(long)]
    pub department: Option<String>,
    #[arg(long)]
    pub department_phone: Option<String>,
    #[arg(long)]
    pub support_email: Option<String>,
    #[arg(long)]
    pub org_magic: Option<String>,
    /// ISO 639 language, e.g. en.
    #[arg(long)]
    pub language: Option<String>,
    /// ISO 3166 region, e.g. US.
    #[arg(long)]
    pub region: Option<String>,
    /// PEM certificate file the device trusts for Russet's enrollment URL (repeat for more).
    #[arg(long = "anchor-certificate", value_name = "FILE")]
    pub anchor_certificates: Vec<PathBuf>,
    /// Setup Assistant panes to skip, comma-separated (see `russet profile panes`).
    #[arg(long, value_delimiter = ',', value_name = "PANES")]
    pub skip: Option<Vec<String>>,
    /// e.g. "{{DEVICETYPE}}-{{SERIAL}}" (at most 63 characters).
    #[arg(long)]
    pub device_name_template: Option<String>,
    #[arg(long, value_name = "BOOL")]
    pub auto_advance_setup: Option<bool>,
    /// A configuration profile (.mobileconfig) installed while the device waits in Setup
    /// Assistant, before DeviceConfigured (repeat for more; with --await-device-configured).
    #[arg(long = "install-profile", value_name = "FILE")]
    pub install_profiles: Vec<PathBuf>,
    /// A JSON file of settings (flags given as well override it).
    #[arg(long, value_name = "FILE.json")]
    pub from_json: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Create a profile under a token and define it at Apple.
    Create {
        /// Token id or name.
        #[arg(long)]
        token: String,
        #[command(flatten)]
        settings: ProfileFlags,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change settings of a profile; Apple gets a new profile and its devices are reassigned.
    Edit {
        /// Profile id.
        profile: i64,
        #[command(flatten)]
        settings: ProfileFlags,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a profile with all its settings.
    Show {
        profile: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List profiles (of one token with --token).
    List {
        #[arg(long)]
        token: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a profile that is not a default and has no devices.
    Delete {
        profile: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Assign a profile to devices, by serial numbers or by filter, showing progress.
    Assign {
        profile: i64,
        /// Serial numbers (comma-separated, or repeat the flag).
        #[arg(long, value_delimiter = ',')]
        serials: Vec<String>,
        /// A file with one serial number per line.
        #[arg(long, value_name = "FILE")]
        serials_file: Option<PathBuf>,
        /// unassigned, any, or profile:NAME.
        #[arg(long)]
        filter: Option<String>,
        /// Return without waiting for Apple's answers.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Make a profile the token's default for newly synced devices (--clear for none).
    SetDefault {
        /// Token id or name.
        #[arg(long)]
        token: String,
        /// Profile id.
        profile: Option<i64>,
        #[arg(long, conflicts_with = "profile")]
        clear: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The Setup Assistant panes a profile can skip.
    Panes {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List devices with filters.
    List {
        /// Token id or name.
        #[arg(long)]
        token: Option<String>,
        /// Profile id.
        #[arg(long)]
        profile: Option<i64>,
        /// Only devices without a profile.
        #[arg(long)]
        unassigned: bool,
        /// Apple's profile status: empty, assigned, pushed, removed.
        #[arg(long)]
        profile_status: Option<String>,
        /// pending, success, not_accessible, failed, throttled.
        #[arg(long)]
        assign_state: Option<String>,
        #[arg(long)]
        serial_prefix: Option<String>,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        family: Option<String>,
        #[arg(long)]
        os: Option<String>,
        /// RFC 3339 time.
        #[arg(long)]
        added_since: Option<String>,
        /// Also devices released or moved away in ABM.
        #[arg(long)]
        include_removed: bool,
        /// At most this many devices (all pages are followed up to it).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a device with its ABM record and assignment history.
    Show {
        serial: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a device record (it comes back at the next full sync while ABM still assigns it).
    Delete {
        serial: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Devices bought in the simulated ABM and synced.
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// How many of them are switched on and enroll through Setup Assistant.
    #[arg(long, default_value_t = 50)]
    pub activate: usize,
    /// Where Russet listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Keep Russet's data here instead of a temporary directory removed at the end.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Run the story, check it, stop and exit (non-zero if a check failed): for CI.
    #[arg(long)]
    pub non_interactive: bool,
}
