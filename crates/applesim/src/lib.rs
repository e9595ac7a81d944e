//! # applesim: a simulator of Apple's side of Automated Device Enrollment
//!
//! `applesim` plays Apple for an MDM server under test. It simulates:
//!
//! * **Apple Business Manager / Apple School Manager, the administrator's side.** You can
//!   create organisations and MDM servers, upload the MDM vendor's public key and
//!   download server tokens (`.p7m`, made like Apple's). You can also buy, assign, move,
//!   modify and release devices, and require new terms and conditions.
//! * **The DEP ("Device Assignment") web API** that MDM servers call at
//!   `https://mdmenrollment.apple.com/`. This covers OAuth 1.0a `/session`, `/account`,
//!   fetch and sync with cursors, device details, disown, and profile define/get/assign/remove.
//! * **MDM push certificates**: MDM vendor ("MDM CSR") signing certificates and the Apple
//!   Push Certificates Portal (`identity.apple.com/pushcert`): create and renew, with the
//!   checks Apple makes on the vendor-signed request.
//! * **APNs** (`api.push.apple.com`) on a listener of its own: HTTP/2 over TLS with the push
//!   certificate as client certificate, and the device side (push tokens that simulated
//!   devices register and are woken through).
//! * **Devices** ([`devices`]): iPhones, iPads and Macs that enroll in an MDM server through
//!   an enrollment link (profile, SCEP, check-ins) or activate through Automated Device
//!   Enrollment as ABM devices (signed MachineInfo, sign-in page, DeviceConfigured), and
//!   answer its commands when pushed.
//!
//! It is an independent peer written from Apple's documented behaviour. It shares no code
//! with the MDM server it tests, so a misunderstanding on the client side is not mirrored
//! here. Everything is in memory. A device takes 56 bytes plus its share of the indexes,
//! so a million devices fit comfortably.
//!
//! Tests drive it in process through [`AppleSim`]. Other tools can use the admin HTTP API
//! or the `applesim serve` binary.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use applesim::{AppleSim, DeviceSpec, OrgKind};
//! let sim = AppleSim::new();
//! let org = sim.create_org("Example Org", OrgKind::Business);
//! let server = sim.create_mdm_server(org, "Russet");
//! let serials = sim.add_devices(org, 100, DeviceSpec::default());
//! sim.assign_devices(server, &serials).unwrap();
//! let running = sim.serve("127.0.0.1:0".parse().unwrap()).await?;
//! println!("DEP base URL: {}", running.base_url);
//! println!("APNs base URL: {}", running.apns_url);
//! # Ok(()) }
//! ```
//!
//! ## The DEP API (at the root of the listener)
//!
//! | Method and path | What it does |
//! |---|---|
//! | `GET /session` | OAuth 1.0a with real HMAC-SHA1 verification. The answer is `{"auth_session_token":"…"}`. |
//! | `GET /account` | `server_name`, `server_uuid`, `admin_id`, `facilitator_id` and `org_*`. The protocol version 3+ keys `org_id`, `org_id_hash`, `org_type`, `org_version` and `urls` come only when the client sends version 3 or higher. |
//! | `POST /server/devices` | Fetch all devices of the server, page by page. |
//! | `POST /devices/sync` | Changes after the cursor's position, each with `op_type` and `op_date`. |
//! | `POST /devices` | Details. Each device has `response_status` `SUCCESS` or `NOT_FOUND`. |
//! | `POST /devices/disown` | `SUCCESS` or `NOT_ACCESSIBLE`. The device leaves the organisation. |
//! | `POST /profile`, `GET /profile?profile_uuid=` | Define a profile (validated like Apple) and get it. |
//! | `POST` or `PUT /profile/devices` | Assign a profile. Results are `SUCCESS`, `NOT_ACCESSIBLE`, `FAILED` or `THROTTLED`. |
//! | `DELETE /profile/devices` | Remove a profile. The status becomes `removed`. |
//!
//! Behaviour common to every endpoint:
//!
//! * **Check order.** For each request the simulator first records it (see
//!   [`AppleSim::requests`]). It then applies an injected fault, if any. Next it checks
//!   for a `User-Agent` (missing gives 400 `USER_AGENT_MISSING`). Then comes
//!   authentication: `/session` uses OAuth; every other endpoint needs the
//!   `X-ADM-Auth-Session` header, and a missing, unknown or expired session gives 401
//!   `UNAUTHORIZED`. After that, pending terms give 403 `T_C_NOT_SIGNED`, and a body that
//!   is not JSON gives 400 `MALFORMED_REQUEST_BODY`.
//! * **Wrong method.** A known path with the wrong method answers 405 with an empty body,
//!   like depsim.
//! * **Protocol version.** `X-Server-Protocol-Version` is read on every request. A missing
//!   or unparsable value counts as version 1. Devices carry `os` and `device_family` only
//!   from version 2 on. iPads report `os` `iOS` below version 7 and `iPadOS` from 7 on.
//!   `THROTTLED` appears from version 9 (below that it is `FAILED`), and
//!   `retry_after_seconds` from version 10.
//! * **Error bodies.** The format is set by [`AppleSim::set_error_style`]. `Bare` sends the
//!   code as `text/plain`, as Apple does. `Quoted` sends a JSON string, as depsim does.
//!   `Json` sends `{"code","message"}`. OAuth failures on `/session` carry OAuth Problem
//!   Reporting text, for example `oauth_problem=signature_invalid`, instead of a code.
//!
//! ### Choices where Apple's behaviour is undocumented
//!
//! * **Sessions.** A session lives 30 minutes of sim time by default, counted from its
//!   creation (see [`AppleSim::set_session_policy`]). When rotation is on, the old token
//!   stops working at once. Downloading a new token also ends the sessions of the previous
//!   token.
//! * **`/session` status codes.**
//!   * An unknown, superseded or expired token, a wrong signature or a replayed nonce
//!     gives 401.
//!   * A missing parameter, a duplicated one, an unsupported one (such as
//!     `oauth_callback`), or a signature method other than `HMAC-SHA1` gives 400.
//!   * `oauth_timestamp` is not compared with the clock.
//!   * The signature is checked against `http://` and `https://` forms of the `Host`
//!     header's URL, or only the scheme named by `X-Forwarded-Proto` if that is present.
//! * **Fetch.**
//!   * Pages follow the order in which devices were bought. `limit` defaults to 100.
//!     Values of 0 or below use the default, and values above 1000 are clamped to 1000.
//!   * `fetched_until` is the sim time of the response.
//!   * The last page's cursor answers a further fetch with `EXHAUSTED_CURSOR`. A sync with
//!     it reports every change since the fetch *began*, so changes made during a long
//!     fetch are not lost.
//!   * A continuation cursor older than 7 days gives `EXPIRED_CURSOR` on fetch too.
//! * **Sync.**
//!   * It returns the server's change log from the cursor on, in order. The same serial
//!     may appear several times.
//!   * Records carry the device's *current* attributes with the event's `op_type` and
//!     `op_date`. For `deleted` events, and for devices that have since moved to another
//!     server, the profile and assignment fields are left out.
//!   * A cursor of another MDM server, of another simulator instance, or one that was
//!     altered gives `INVALID_CURSOR`.
//! * **Moves.** A device moved to another server loses its profile assignment
//!   (`profile_status` `empty`).
//! * **Details and disown.** They see only the calling server's devices. Other and unknown
//!   devices are `NOT_FOUND` (details) or `NOT_ACCESSIBLE` (disown).
//! * **`devices` arrays.** More than 1000 serials in one request give 400
//!   `MALFORMED_REQUEST_BODY`. An empty or missing array gives `DEVICE_ID_REQUIRED`.
//!   Duplicate serials are answered once.
//! * **Profiles.**
//!   * A profile belongs to the server that defined it. The profile UUID of another
//!     server gives 404 `PROFILE_NOT_FOUND`, on get and on assign.
//!   * Profile UUIDs are 32 uppercase hex digits and are matched exactly.
//!   * Assigning sets `profile_status` `assigned` and `profile_assign_time`, clears
//!     `profile_push_time`, and adds a `modified` event.
//!   * Removing sets `profile_status` `removed` and clears `profile_uuid` and both profile
//!     times, with a `modified` event. A device without a profile answers `SUCCESS` and
//!     nothing changes.
//!   * A device can also download its profile in this simulator, through
//!     [`AppleSim::simulate_profile_fetch`]. The status then becomes `pushed`, with a
//!     `modified` event.
//! * **Throttling.** It uses fixed windows of sim time per server, counting devices that
//!   were actually assigned.
//!
//! ## Push certificates (see [`pushcert`])
//!
//! The simulated Apple PKI has a root CA ("Apple Root CA"), a WWDR intermediate that issues
//! MDM vendor certificates, and a push CA ("Apple Application Integration 2") that issues
//! push certificates. Their RSA 2048 keys are made on first use, not in [`AppleSim::new`].
//!
//! * [`AppleSim::issue_vendor_certificate`] turns the vendor's CSR (PEM) into its MDM
//!   signing certificate, issued by the WWDR CA for a year. [`AppleSim::vendor_chain_pem`]
//!   is what the vendor appends: the WWDR CA, then the root.
//! * [`AppleSim::push_portal_create`] takes the Apple ID and the uploaded text: base64 of a
//!   plist with `PushCertRequestCSR` (base64 of the customer CSR's DER),
//!   `PushCertCertificateChain` (PEM: vendor certificate, WWDR, root) and
//!   `PushCertSignature` (base64 of the vendor's SHA256withRSA signature over the CSR's
//!   DER). It checks every part and issues a certificate with subject
//!   `UID=com.apple.mgmt.External.<uuid>, CN=APSP:<uuid>, C=US`, issued by the push CA, valid
//!   one year from the simulated clock, with extended key usage clientAuth and the CSR's
//!   public key. The UID is the APNs topic.
//! * [`AppleSim::push_portal_renew`] does the same for an existing topic and keeps it. Only
//!   the Apple ID that created the topic may renew it (compared without case). Earlier
//!   certificates stay valid until they expire.
//! * [`AppleSim::revoke_push_cert`] revokes every certificate of a topic (a test aid).
//!
//! Choices where Apple's behaviour is undocumented: the chain must start with the vendor
//! certificate and must carry the root; the vendor signature must be SHA-256 (SHA-1 is
//! refused); the CSR key must be RSA with at least 2048 bits; a vendor certificate that has
//! expired by the simulated clock is refused ("Certificate Signature Verification failed
//! because the … certificate expired", as the portal words it).
//!
//! ## APNs (see [`apns`]; its own listener, [`RunningSim::apns_url`])
//!
//! HTTP/2 only (ALPN `h2`; other protocols get the `no_application_protocol` alert), TLS 1.2
//! or 1.3, server certificate for `127.0.0.1`, `::1`, `localhost` and Apple's APNs host names
//! from a CA of its own ([`AppleSim::apns_ca_pem`]). The client certificate is verified in
//! the handshake: it must come from the push CA and be one the portal issued. An expired
//! certificate (by the simulated clock) gets the `certificate_expired` alert, as Apple's
//! servers send; a revoked one `certificate_revoked`. Each connection announces
//! `SETTINGS_MAX_CONCURRENT_STREAMS` [`apns::MAX_CONCURRENT_STREAMS`].
//!
//! `POST /3/device/<hex token>` with the body `{"mdm":"<PushMagic>"}` answers 200 with an
//! `apns-id` header and an empty body, and wakes the device registered with that token
//! ([`AppleSim::register_push_token`]; pushes coalesce, as APNs keeps only the last one).
//! Every answer has `apns-id` (the client's, or a new uppercase UUID). Errors are JSON
//! `{"reason":"…"}`, plus `"timestamp"` (ms since the epoch) for 410. The checks, in order:
//!
//! | Check | Answer |
//! |---|---|
//! | an injected `apns` fault | see below |
//! | path is not `/3/device/…` | 404 `BadPath` |
//! | method is not `POST` | 405 `MethodNotAllowed` |
//! | the connection's certificate expired or was revoked since the handshake | 403 `BadCertificate` |
//! | an `apns-*` header repeated | 400 `DuplicateHeaders` |
//! | `apns-push-type` present and not `mdm` | 400 `InvalidPushType` |
//! | `apns-topic` empty or not printable ASCII / another topic than the certificate's | 400 `BadTopic` / 400 `TopicDisallowed` |
//! | `apns-id` not a canonical UUID | 400 `BadMessageId` |
//! | `apns-priority` not 10, 5 or 1 | 400 `BadPriority` |
//! | `apns-expiration` not a non-negative integer | 400 `BadExpirationDate` |
//! | `apns-collapse-id` longer than 64 bytes | 400 `BadCollapseId` |
//! | no token in the path | 400 `MissingDeviceToken` |
//! | token not hex, or longer than 100 bytes | 400 `BadDeviceToken` |
//! | body over 4096 bytes | 413 `PayloadTooLarge` |
//! | empty body | 400 `PayloadEmpty` |
//! | body not a JSON object with a non-empty `mdm` string | 400 `BadPayload` (Apple documents no reason for this; the simulator is strict) |
//! | token never registered | 400 `BadDeviceToken` |
//! | token registered for another topic | 400 `DeviceTokenNotForTopic` |
//! | token unregistered ([`AppleSim::unregister_push_token`]) | 410 `Unregistered` with `timestamp` |
//!
//! Faults (endpoint `apns`): `too_many_requests` → 429 `TooManyRequests`,
//! `internal_error` → 500 `InternalServerError`, `service_unavailable` → 503
//! `ServiceUnavailable` (both with `Retry-After` if given), `go_away` → 503 `Shutdown`
//! followed by a GOAWAY frame, `drop_connection` → the TCP connection closes without an
//! answer, `slow` → normal answer after a delay, `unauthorized`/`forbidden`/
//! `access_denied`/`terms_not_signed` → 403 `Forbidden`, `bad_request` → 400 with `code` as
//! the reason. Every request is recorded ([`AppleSim::pushes`], at most
//! [`apns::PUSH_LOG_CAPACITY`]) and counted ([`AppleSim::apns_stats`]).
//!
//! ## Admin HTTP API (under `/abm`, JSON)
//!
//! | Route | Body → answer |
//! |---|---|
//! | `GET /abm/orgs` | → `[{org_id,name,kind,terms_pending,servers}]` |
//! | `POST /abm/orgs` | `{"name","kind":"business"\|"education"}` → `201 {"org_id"}` |
//! | `POST /abm/orgs/{org}/servers` | `{"name"}` → `201 {"server_id","server_uuid"}` |
//! | `POST /abm/orgs/{org}/devices` | `{"count","family"?: "Mac"\|"iPhone"\|"iPad"\|"AppleTV"\|"Vision"}` → `{"serials"}` |
//! | `GET /abm/orgs/{org}/devices/unassigned` | → `{"serials"}` |
//! | `PUT /abm/orgs/{org}/terms` | `{"pending": bool}` → 204 |
//! | `GET /abm/servers/{server}` | → name, UUID, organisation, counts, key and token presence, throttle |
//! | `PUT /abm/servers/{server}/public-key` | the PEM certificate as the raw body → 204 |
//! | `POST /abm/servers/{server}/token` | → the `.p7m` (`application/pkcs7-mime`); earlier tokens stop working |
//! | `GET` or `PUT /abm/servers/{server}/credentials` | the plaintext token JSON (`consumer_key`, …, `access_token_expiry`) |
//! | `GET /abm/servers/{server}/devices?offset=&limit=` | → the server's devices (API fields plus `org_id` and `server_id`) |
//! | `POST /abm/servers/{server}/devices` | `{"serials":[…]}` → 204 (assign or move) |
//! | `PUT` or `DELETE /abm/servers/{server}/throttle` | `{"devices_per_window","window_seconds","retry_after_seconds"}` |
//! | `POST /abm/devices/release` | `{"serials"}` → 204 |
//! | `POST /abm/devices/modify` | `{"serials","asset_tag"?,"color"?,"description"?}` → 204 |
//! | `POST /abm/devices/profile-fetched` | `{"serials"}` → 204 |
//! | `GET /abm/devices/{serial}` | → the device |
//! | `GET /abm/profiles/{uuid}` | → the profile as defined |
//! | `GET` or `POST /abm/clock` | `{"set":"RFC 3339"}` and/or `{"advance_seconds":n}` → `{"now","unix"}` |
//! | `GET`, `POST` or `DELETE /abm/faults` | see below |
//! | `PUT /abm/error-style` | `{"style":"bare"\|"quoted"\|"json"}` |
//! | `PUT /abm/session-policy` | `{"lifetime_seconds","rotate_every"?}` |
//! | `PUT /abm/move-style` | `{"style":"added"\|"modified"}` |
//! | `GET` or `DELETE /abm/requests?last=N` | the request log |
//! | `POST /abm/vendor-certificate` | the vendor's CSR (PEM) as the raw body → its MDM signing certificate (PEM) |
//! | `GET /abm/vendor-chain` | → the WWDR CA and root PEMs, in that order |
//! | `GET /abm/push-certificates` | → `[{topic,apple_id,serial,not_before,not_after,revoked}]` |
//! | `POST /abm/push-certificates` | `{"apple_id","request"}` → `201 {"certificate_pem","topic","serial","not_after","apple_id"}` |
//! | `POST /abm/push-certificates/{topic}/renew` | `{"apple_id","request"}` → the same shape (403 for another Apple ID, 404 for an unknown topic) |
//! | `POST /abm/push-certificates/{topic}/revoke` | → 204 |
//! | `GET /abm/apns-ca` | → the APNs server certificate's CA (PEM) |
//! | `GET /abm/device-ca` | → the root of simulated device identities, "Apple iPhone Device CA" (PEM), which signs MachineInfo |
//! | `POST /abm/push-tokens` | `{"topic","token"?: hex}` → `201 {"token","topic"}` (a random 32-byte token unless given) |
//! | `DELETE /abm/push-tokens/{token}` | → 204; pushes to it then get 410 `Unregistered` |
//! | `GET` or `DELETE /abm/pushes?last=N` | the APNs request log |
//! | `GET /abm/push-stats` | → `{connections,handshake_failures,requests,delivered,rejected,server_errors,dropped}` |
//!
//! The faults body is `{"endpoint","faults":[…]}`.
//!
//! * `endpoint` is one of `session`, `account`, `fetch_devices`, `sync_devices`,
//!   `device_details`, `disown`, `define_profile`, `get_profile`, `assign_profile`,
//!   `remove_profile` or `apns`.
//! * Each entry of `faults` is `{"count","kind",…}`. `kind` is one of `pass`,
//!   `unauthorized`, `forbidden`, `access_denied`, `terms_not_signed`,
//!   `too_many_requests`, `service_unavailable`, `internal_error`, `bad_request`, `slow`,
//!   `drop_connection` or `go_away` (on the DEP API: 503 `SERVICE_UNAVAILABLE` with
//!   `Connection: close`).
//! * The optional keys depend on the kind:
//!   * `too_many_requests` and `service_unavailable` take `retry_after_seconds` or
//!     `retry_after_date_in_seconds`.
//!   * `bad_request` takes `code`.
//!   * `slow` takes `millis`.
//!
//! Admin errors are `{"error":"…"}`, with status 404 for unknown objects and 400 for
//! invalid input.
//!
//! ## Simulated devices (see [`devices`]; `applesim devices`)
//!
//! A [`devices::Fleet`] of iPhones, iPads and Macs plays the device side of MDM against a
//! real server, written from Apple's `mdm/checkin`, `mdm/commands` and `mdm/profiles`
//! schemas. Each device downloads the enrollment profile behind a link (plain or
//! CMS-signed), gets its identity with its own SCEP client (RFC 8894: GetCACaps, GetCACert
//! with the `CAFingerprint` check, PKCSReq with the challenge; AES-256 or DES3, SHA-256 or
//! SHA-1, POST or GET, as the CA's capabilities say), registers a push token with this
//! simulator's APNs, checks in (Authenticate, TokenUpdate; `Mdm-Signature` when the profile
//! says `SignMessage`), and then connects whenever it is pushed, answering DeviceInformation,
//! SecurityInfo, ProfileList, InstallProfile, RemoveProfile, InstalledApplicationList,
//! Settings, DeviceConfigured, DeviceLock, RestartDevice and EraseDevice with the response
//! keys of Apple's schema, `Error` 12021 (`MCMDMErrorDomain`, "Unknown command") for anything
//! else and `CommandFormatError` without a `RequestType`. With a NotNow rate, commands Apple
//! lets a device defer are answered `NotNow` at random and the device connects again by
//! itself shortly after. Tests can check a device out, renew its identity (SCEP
//! RenewalReq) and read what each device received and answered.
//!
//! ```no_run
//! # async fn demo(sim: applesim::AppleSim, link: &str) -> Result<(), applesim::devices::FleetError> {
//! use applesim::devices::{Fleet, FleetOptions};
//! let fleet = Fleet::new(sim, FleetOptions { not_now_rate: 0.1, ..FleetOptions::default() })?;
//! let report = fleet.enroll(link, 100).await;
//! assert!(report.failed.is_empty());
//! fleet.renew(0).await?;
//! fleet.checkout(1).await?;
//! println!("{:?}", fleet.stats());
//! # Ok(()) }
//! ```
//!
//! The fleet must share the [`AppleSim`] that issued the MDM server's push certificate: APNs
//! accepts only certificates its own portal issued. The `applesim devices` command is
//! therefore the whole simulator (what `applesim serve` runs) plus a fleet in one process:
//! start it first, give the MDM server its vendor certificate, APNs CA and push certificate
//! from it (the command prints how), then the enrollment link (`--enroll-url`, or pasted on
//! standard input). It prints a summary line every second and totals on Ctrl-C
//! (`--checkout-on-exit` checks every device out first).
//!
//! ```text
//! applesim devices --count 200 --mix iphone=2,ipad=1,mac=1 --not-now-rate 0.1 \
//!     --apns-listen 127.0.0.1:9801 --key-pool 50 [--enroll-url URL] [--ca-file ca.pem] [--checkout-on-exit]
//! ```
//!
//! **Automated Device Enrollment** ([`devices::activation`]): [`devices::Fleet::activate`]
//! takes serial numbers of this simulator's ABM devices. A device assigned to an MDM server
//! with an ADE profile behaves like a new device in Setup Assistant: its profile becomes
//! `pushed`, it signs its MachineInfo with a hardware identity from the simulated "Apple
//! iPhone Device CA" ([`AppleSim::device_ca_root_pem`], `GET /abm/device-ca`; the MDM server
//! must trust it), gets the enrollment profile from `configuration_web_url` (header
//! `x-apple-aspen-deviceinfo`, signing in on the page's form with the credentials it was
//! given) or by `POST`ing MachineInfo to `url`, installs it with the same code as a link
//! enrollment, and with `await_device_configured` waits for DeviceConfigured. Each device
//! gets an [`devices::ActivationOutcome`]: enrolled (and when configured), refused (where,
//! HTTP status, message) or not in ADE (nothing sent). The same serial is always the same
//! UDID; [`devices::Fleet::erase_and_activate`] wipes a device and activates it again.
//!
//! ```text
//! applesim devices --activate 50 [--abm-devices 200] [--username ava --password secret] \
//!     [--configured-timeout-secs 300] --mix iphone=2,ipad=1,mac=1 --key-pool 50
//! ```
//!
//! Each device makes an RSA key (`Keysize` of the profile, 2048 by default): thousands of
//! devices take minutes on two cores, so `--key-pool K` / [`devices::FleetOptions::key_pool`]
//! shares K keys made once (each device still gets its own certificate).
//!
//! ## Server tokens
//!
//! [`AppleSim::download_token`] writes exactly the four MIME header lines of Apple's
//! file, then a blank line. The body is base64 in 76-column lines of a CMS
//! EnvelopedData: BER with indefinite lengths, AES-128-CBC content encryption, and RSA
//! PKCS#1 v1.5 key transport to the uploaded certificate (recipient = issuer and serial
//! number). The encrypted content is Apple's `text/plain` MIME entity with the JSON
//! between `-----BEGIN MESSAGE-----` and `-----END MESSAGE-----`.

#![warn(missing_docs)]

mod admin;
pub mod apns;
mod catalog;
mod clock;
mod cursor;
mod dep;
pub mod deviceca;
pub mod devices;
pub mod oauth;
pub mod pushcert;
mod server;
mod sim;
mod state;
pub mod timefmt;
pub mod token;
mod types;
pub mod vpp;
mod vppadmin;
mod vppapi;

pub use apns::{ApnsStats, PushReceiver, PushRecord, PushRegistration, PushWake};
pub use clock::SimClock;
pub use dep::{CURSOR_LIFETIME, DEFAULT_LIMIT, MAX_LIMIT, MAX_SERIALS};
pub use pushcert::{IssuedPushCert, PushCertInfo};
pub use server::RunningSim;
pub use sim::{AppleSim, REQUEST_LOG_CAPACITY};
pub use types::{
    DeviceChange, DeviceFamily, DeviceSpec, Endpoint, ErrorStyle, Fault, FaultKind, MoveStyle, OrgId, OrgKind,
    RequestRecord, RetryAfter, ServerId, SimCredentials, SimDevice, SimError, ThrottlePolicy,
};
pub use vpp::{
    VppAssetInfo, VppAssetSpec, VppAssignee, VppAssignment, VppEventFailure, VppEventInfo, VppEventStatus,
    VppEventType, VppFault, VppFaultKind, VppLimits, VppLocationId, VppLocationInfo, VppMdmInfo, VppPlatform,
    VppPricing, VppProductType,
};
