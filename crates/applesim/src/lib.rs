//! # applesim: a simulator of Apple's side of Automated Device Enrollment and Apps and Books
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
//! * **Apps and Books** (formerly VPP; see [`vpp`]): locations with their content tokens
//!   (`.vpptoken` files), licences and assignments, and the App and Book Management API v2
//!   that MDM servers call at `https://vpp.itunes.apple.com/mdm/v2`, served here under
//!   `/mdm/v2` ([`RunningSim::vpp_url`]).
//!
//! It is an independent peer written from Apple's documented behaviour. It shares no code
//! with the MDM server it tests, so a misunderstanding on the client side is not mirrored
//! here. Everything is in memory. A device takes 56 bytes plus its share of the indexes,
//! so a million devices fit comfortably.
//!
//! Tests drive it in process through [`AppleSim`]. Other tools can use the admin HTTP API
//! or the `applesim serve` binary (`applesim serve --vpp` also prints an Apps and Books
//! location token).
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
//! ## Apps and Books (under `/mdm/v2`; see [`vpp`])
//!
//! A location belongs to an organisation. It has a unique `uId` (16 decimal digits), a
//! name, a country (`US` unless set), an optional `mdmInfo`, notification settings,
//! assets (licences bought: `adamId`, App or Book, STDQ or PLUS, counts, platforms,
//! device-assignable, revocable), assignments to serial numbers or `clientUserId`s, and a
//! `versionId`. The wire format follows the contract shared with Russet's client
//! (`vpp-wire.md`), which in turn follows Apple's documentation.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use applesim::{AppleSim, OrgKind, VppAssetSpec, VppFault, VppFaultKind, VppMdmInfo};
//! let sim = AppleSim::new();
//! let org = sim.create_org("Example Org", OrgKind::Business);
//! let loc = sim.create_vpp_location(org, "Paris Office");
//! sim.add_vpp_asset(loc, VppAssetSpec::app("361309726", 100))?;
//! sim.add_vpp_asset(loc, VppAssetSpec::book("1058120411", 20))?;
//! let token = sim.download_vpp_token(loc)?; // the .vpptoken file content
//! let running = sim.serve("127.0.0.1:0".parse()?).await?;
//! // The MDM server calls `{running.vpp_url}/client/config` with `Authorization: Bearer {token}`.
//! sim.set_vpp_mdm_info(loc, Some(VppMdmInfo::new("other-id", "Other MDM", "")))?; // a takeover
//! sim.push_vpp_faults(vec![VppFault::on("/assets", 1, VppFaultKind::too_many_requests(30))]);
//! sim.clock().advance(time::Duration::days(366)); // every token of the location has expired
//! # Ok(()) }
//! ```
//!
//! **Tokens.** Each download ([`AppleSim::download_vpp_token`], or
//! [`AppleSim::download_vpp_token_expiring`] with a chosen expiry) makes a new file: base64
//! (standard, padded, no trailing newline) of `{"token","expDate","orgName"}`, where `token`
//! is 48 random bytes in base64, `expDate` is `YYYY-MM-DDTHH:MM:SS+0000` (a year from the sim
//! clock by default) and `orgName` is the organisation's name. The whole file content is the
//! credential: `Authorization: Bearer <content>`. Every downloaded token stays valid until it
//! expires by the sim clock or is revoked ([`AppleSim::revoke_vpp_token`],
//! [`AppleSim::revoke_vpp_tokens`]).
//!
//! | Method and path | What it does |
//! |---|---|
//! | `GET /client/config` | `countryISO2ACode`, `defaultPlatform` (always `volumestore`), `locationName`, `mdmInfo` (absent until an MDM claims the location), `notificationAuthToken`, `notificationUrl`, `subscribedNotificationTypes`, `tokenExpirationDate` (of the token used), `uId`, `websiteURL` (`https://school.apple.com` for education organisations, `https://business.apple.com` otherwise). |
//! | `POST /client/config` | Writes `mdmInfo` (`id` and `name` non-empty strings, `metadata` optional; else 9602), `notificationUrl` with `notificationAuthToken` (both or neither: 9710; an `https` URL: 9712; both `""` clears them) and `notificationTypes` (the four types of `/service/config`; else 9602). Absent or `null` keys change nothing. Everything is checked before anything changes. Answers like the GET. Notifications are stored, never sent. |
//! | `GET /service/config` | No token needed. `errorCodes` (every number the simulator uses, with its message), `limits` ([`AppleSim::set_vpp_limits`]; 25, 1000, 1000 by default), `notificationTypes`, and `urls` built from the request's `Host` (and `X-Forwarded-Proto: https`). |
//! | `GET /assets` | Filters `adamId`, `pricingParam`, `productType`, `revocable`, `deviceAssignable`, `min`/`maxAvailableCount`, `min`/`maxAssignedCount` (bounds included). Assets in purchase order. |
//! | `GET /assignments` | Filters `adamId`, `serialNumber`, `clientUserId`, `sinceVersionId`. Assignments oldest first. |
//! | `POST /assets/associate`, `/assets/disassociate`, `/assets/revoke` | Checked at once (table below); then `{"eventId","tokenExpirationDate","uId"}` and the work happens later. |
//! | `GET /status?eventId=` | `eventId`, `eventStatus`, `eventType`, `numCompleted`, `numRequested`, `failures` (always present), `tokenExpirationDate`, `uId`. No `eventId`: 9602; an unknown one, or one of another location: 9708. |
//!
//! Behaviour common to every endpoint, in order: the request is recorded in
//! [`AppleSim::requests`] (path `/mdm/v2/…`, `endpoint` `None`, `serials` = the number of
//! `serialNumbers`); an injected fault applies; the token is checked (not for
//! `/service/config`); a `POST` must have `Content-Type: application/json` (parameters
//! allowed; else 415 9727); events of the location that are due are carried out; then the
//! request is checked and answered. A known path with another method gets 405 9726; an
//! unknown path under `/mdm/v2` gets 404 with an empty body. Errors are
//! `{"errorNumber","errorMessage","errorInfo"?}` as `application/json`, with the contract's
//! messages ([`vpp::vpp_error_message`]).
//!
//! | Token check | Answer |
//! |---|---|
//! | no `Authorization` header | 401 9601 |
//! | not exactly one `Bearer <token>` (scheme in any case; a token without spaces) | 401 9722 |
//! | a token this simulator never made (also the inner `token` alone, or a re-encoded file) | 401 9622 |
//! | revoked (reported before expiry) | 401 9625 |
//! | expired by the sim clock | 401 9621 |
//!
//! | Manage request check, in order | Answer (400) |
//! |---|---|
//! | body not a JSON object; `assets` not an array of objects with a digits-only string `adamId` and an optional `pricingParam` `STDQ`/`PLUS` (default `STDQ`); `serialNumbers`/`clientUserIds` not arrays of non-empty strings | 9602 |
//! | no assets (associate, disassociate; for revoke none means all) | 9718 |
//! | neither serial numbers nor users | 9719 |
//! | more assets, users or serial numbers than the limits | 9700, 9701, 9702 |
//! | the same asset, user or serial number twice | 9703, 9704, 9705 (`errorInfo` lists them) |
//! | an asset the location does not have | 9602 (`errorInfo.assets`) |
//! | associate a book (not device-assignable) with serial numbers | 9707 (`errorInfo.assets`) |
//! | disassociate or revoke an asset that is not revocable | 9706 (`errorInfo.assets`) |
//!
//! ### Choices where Apple's behaviour is undocumented
//!
//! * **Events** are carried out [`vpp::DEFAULT_VPP_EVENT_DELAY`] (50 ms of real time,
//!   [`AppleSim::set_vpp_event_delay`]) after they were accepted, in submission order,
//!   lazily: at the latest when anything next looks at the location (any API call with one
//!   of its tokens, or a Rust read such as [`AppleSim::vpp_assignments`]). There is no
//!   background task, and the result is the same as if one had run. While
//!   [`AppleSim::hold_vpp_events`] is on they stay `PENDING`.
//! * **Items** are each asset × each serial number, then each user. An associate of
//!   something already assigned completes and uses no licence (no 9616 failure). A
//!   disassociate of something not assigned completes. When an asset has no licence left
//!   the item fails with 9709 "Not enough licenses." and the others go on. A revoke without
//!   assets has one item per device or user and takes back every revocable licence it
//!   holds. `eventStatus` is `COMPLETE` when every item completed, `FAILED` when any
//!   failed. Failures are flat: `{adamId, pricingParam, serialNumber|clientUserId,
//!   errorNumber, errorMessage}`.
//! * **Users** need no registration: any `clientUserId` is accepted (the users API is not
//!   simulated).
//! * **`versionId`** is a decimal counter per location, starting at 1. It goes up by one
//!   for each purchase ([`AppleSim::add_vpp_asset`]) and each event or
//!   [`AppleSim::add_vpp_assignments`] call that changed assignments. `sinceVersionId=N`
//!   returns the current assignments made after version N. Removed ones do not appear. A
//!   value that is not decimal or is above the current version gives 9721.
//! * **Pages** hold [`vpp::DEFAULT_VPP_PAGE_SIZE`] records ([`AppleSim::set_vpp_page_size`]).
//!   `size` is the number of matching records, `totalPages` is at least 1 (an empty result
//!   is page 0 of 1), `nextPageIndex` is absent on the last page and a `pageIndex` past it
//!   gives 9650.
//! * **Query parameters** with a bad value give 9602 (booleans exactly `true`/`false`;
//!   counts and `pageIndex` non-negative decimals; `pricingParam` and `productType` exactly
//!   as served; `adamId` digits). A repeated one gives 9602. Unknown ones are ignored, and
//!   so are unknown body keys.
//! * **`tokenExpirationDate`** is in every answer (Apple documents it in the last 15 days
//!   only). `retiredCount` is always 0; `availableCount` is total − retired − assigned.
//!   Buying an `adamId` and pricing already owned adds licences and keeps its attributes.
//!
//! **Faults** ([`AppleSim::push_vpp_faults`]): a list of [`VppFault`]s, each with an
//! optional path under `/mdm/v2` (exact: `/assets` does not match `/assets/associate`), a
//! count and a [`VppFaultKind`]. A request takes the first entry that matches its path
//! (or has none) and uses up one of its count. Kinds: an Apple error with any HTTP status
//! and an optional `Retry-After` (shortcuts: `too_many_requests` 429 9646,
//! `service_unavailable` 503 9603, `internal_error` 500 9603, `token_revoked` 401 9625,
//! `token_invalid` 401 9622, `error_in_ok_body` 200 with an error body), `Slow`,
//! `DropConnection`, `FailEvent` (the request is accepted but every item of its event fails
//! with the given number, e.g. 9644 maintenance mode) and `Pass`. Faults apply before the
//! token check.
//!
//! **By hand:** `applesim serve --vpp` gives the default organisation a location "Example
//! Location" with Pages, Numbers, Keynote and a book (`--vpp-licenses N` each, 10 by
//! default) and prints its token; `--vpp-token-file example.vpptoken` writes it to a file
//! instead. Give the MDM server that token and the base URL `http://127.0.0.1:9800/mdm/v2`.
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
//! | `POST /abm/orgs/{org}/vpp-locations` | `{"name","country"?}` → `201 {"location_id","uid"}` |
//! | `GET /abm/vpp-locations` | → every location ([`VppLocationInfo`]: `uid`, `name`, `country`, `mdm_info`, counts, `version_id`, `tokens_downloaded`, `tokens_valid`, `pending_events`) |
//! | `GET` or `PUT /abm/vpp-locations/{loc}` | → the location; `PUT {"name"?,"country"?}` changes them |
//! | `GET` or `POST /abm/vpp-locations/{loc}/assets` | → assets with counts; `POST` a [`VppAssetSpec`] (`{"adam_id","product_type":"App"\|"Book","total","pricing_param"?,"platforms"?,"device_assignable"?,"revocable"?}`) → the asset |
//! | `GET` or `POST /abm/vpp-locations/{loc}/assignments` | → assignments; `POST {"adam_id","pricing_param"?,"serial_numbers"?,"client_user_ids"?}` → 204 (as earlier made elsewhere) |
//! | `POST /abm/vpp-locations/{loc}/token` | `{"expires"?: RFC 3339}` → the `.vpptoken` content as `text/plain` (attachment `sToken_for_<name>.vpptoken`) |
//! | `DELETE /abm/vpp-locations/{loc}/tokens` | → `{"revoked": n}`: every token of the location revoked |
//! | `POST /abm/vpp-tokens/revoke` | the token file content as the raw body → 204 (404 for an unknown token) |
//! | `GET`, `PUT` or `DELETE /abm/vpp-locations/{loc}/mdm-info` | `{"id","name","metadata"?}`: another MDM takes over, or the location is released |
//! | `GET /abm/vpp-events/{event_id}` | → the event ([`VppEventInfo`]) |
//! | `GET`, `POST` or `DELETE /abm/vpp-faults` | `POST {"faults":[{"path"?,"count"?,"kind",…}]}`; `kind` is `pass`, `error` (with `status` and `error_number`), `too_many_requests`, `service_unavailable`, `internal_error`, `token_revoked`, `token_invalid`, `error_in_ok_body`, `slow` (`millis`), `drop_connection` or `fail_event`; `retry_after_seconds` and `error_number` where they apply |
//! | `GET` or `PUT /abm/vpp-settings` | `{"page_size"?,"max_assets"?,"max_client_user_ids"?,"max_serial_numbers"?,"event_delay_millis"?,"hold_events"?}` → the settings now |
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
