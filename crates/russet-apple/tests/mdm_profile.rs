//! Enrollment profiles: every generated profile is checked against Apple's own profile
//! schemas (`apple-device-management/mdm/profiles/*.yaml`, beside the project), read by
//! Python's `plistlib`, signed and checked with the `openssl smime` command line; bad specs
//! get one message per problem.

mod mdm_support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use openssl::hash::MessageDigest;
use plist::{Dictionary, Value};
use regex::Regex;
use russet_apple::mdm::profile::SERVER_CAPABILITIES;
use russet_apple::mdm::{
    EnrollmentProfileSpec, ProfileError, ScepPayloadSpec, build_enrollment_profile, sign_profile, unsign_profile,
};
use yaml_rust2::{Yaml, YamlLoader};

use mdm_support::{Issued, ca_spec, device_spec, issue, openssl_cli, run, skip, tool, write};

const TOPIC: &str = "com.apple.mgmt.External.2f0c7d1e-6b7a-4a55-9c1e-0d5b7f0a9e21";

fn base_spec() -> EnrollmentProfileSpec {
    let mut scep = ScepPayloadSpec::new("https://mdm.example.com/scep", "s3cret-challenge");
    scep.subject = vec![
        ("O".into(), "Example Corp".into()),
        ("CN".into(), "Russet device identity".into()),
    ];
    scep.name = "Russet SCEP CA".into();
    let mut spec = EnrollmentProfileSpec::new(
        "Example Corp",
        "com.example.russet.enroll",
        TOPIC,
        "https://mdm.example.com/mdm",
        scep,
    );
    spec.check_in_url = Some("https://mdm.example.com/checkin".into());
    spec.server_capabilities = SERVER_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    spec
}

/// A spec with everything: anchors (a root and a non-self-signed certificate), a CA
/// fingerprint, locked removal, development APNs.
fn full_spec() -> (EnrollmentProfileSpec, Issued, Issued) {
    let root = issue(&ca_spec("Example Root CA"), None);
    let server = issue(&device_spec("mdm.example.com"), Some(&root));
    let mut spec = base_spec();
    spec.anchor_certs = vec![root.cert.to_der().expect("der"), server.cert.to_der().expect("der")];
    spec.scep.ca_fingerprint = Some(root.cert.digest(MessageDigest::sha1()).expect("sha1").to_vec());
    spec.removal_disallowed = true;
    spec.use_development_apns = true;
    (spec, root, server)
}

fn byod_spec() -> EnrollmentProfileSpec {
    let mut spec = base_spec();
    spec.enrollment_mode = Some("BYOD".into());
    spec.assigned_managed_apple_id = Some("ada@example.com".into());
    spec.access_rights = None;
    spec
}

fn parse(profile: &[u8]) -> Dictionary {
    Value::from_reader_xml(profile)
        .expect("the profile is an XML property list")
        .into_dictionary()
        .expect("a dictionary at the top")
}

fn payloads(top: &Dictionary) -> Vec<&Dictionary> {
    top.get("PayloadContent")
        .and_then(Value::as_array)
        .expect("PayloadContent")
        .iter()
        .map(|p| p.as_dictionary().expect("payload dictionary"))
        .collect()
}

fn payload<'a>(top: &'a Dictionary, payload_type: &str) -> &'a Dictionary {
    payloads(top)
        .into_iter()
        .find(|p| p.get("PayloadType").and_then(Value::as_string) == Some(payload_type))
        .unwrap_or_else(|| panic!("no {payload_type} payload"))
}

fn string<'a>(d: &'a Dictionary, key: &str) -> &'a str {
    d.get(key)
        .and_then(Value::as_string)
        .unwrap_or_else(|| panic!("{key} is not a string"))
}

// ---------------------------------------------------------------------------------------
// Apple's schemas

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/apple-device-management/mdm/profiles")
}

/// Apple's profile schemas, or `None` (announced) when they are not beside the project.
struct Schemas {
    dir: PathBuf,
}

impl Schemas {
    fn find(test: &str) -> Option<Schemas> {
        let dir = schema_dir();
        if dir.join("TopLevel.yaml").is_file() {
            Some(Schemas { dir })
        } else {
            skip(
                test,
                &format!(
                    "Apple's profile schemas are not at {} (shared/ beside the project)",
                    dir.display()
                ),
            );
            None
        }
    }

    fn load(path: &Path) -> Yaml {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
        assert_eq!(docs.len(), 1, "{} holds one document", path.display());
        docs.remove(0)
    }

    /// The schema whose `payload.payloadtype` is `payload_type`.
    fn for_type(&self, payload_type: &str) -> Yaml {
        let wanted = format!("  payloadtype: {payload_type}");
        let mut found = None;
        for entry in std::fs::read_dir(&self.dir).expect("schema directory") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml")
                && std::fs::read_to_string(&path).is_ok_and(|t| t.lines().any(|l| l.trim_end() == wanted))
            {
                assert!(found.is_none(), "two schemas for {payload_type}");
                found = Some(path);
            }
        }
        let path = found.unwrap_or_else(|| panic!("Apple has no schema for payload type {payload_type}"));
        let doc = Self::load(&path);
        assert_eq!(doc["payload"]["payloadtype"].as_str(), Some(payload_type));
        doc
    }

    /// Every violation of Apple's schemas in `profile`.
    fn violations(&self, profile: &Dictionary) -> Vec<String> {
        let mut errors = Vec::new();
        let top = Self::load(&self.dir.join("TopLevel.yaml"));
        check_dict(profile, &keys_of(&top), "", &mut errors);
        let common = Self::load(&self.dir.join("CommonPayloadKeys.yaml"));
        for (i, p) in payloads(profile).into_iter().enumerate() {
            let Some(payload_type) = p.get("PayloadType").and_then(Value::as_string) else {
                errors.push(format!("PayloadContent[{i}] has no PayloadType"));
                continue;
            };
            let schema = self.for_type(payload_type);
            // The payload's own keys, then the common keys it does not redefine.
            let mut keys = keys_of(&schema);
            for k in keys_of(&common) {
                if !keys.iter().any(|own| own["key"] == k["key"]) {
                    keys.push(k);
                }
            }
            check_dict(p, &keys, &format!("PayloadContent[{i}] ({payload_type})"), &mut errors);
        }
        errors
    }
}

fn keys_of(doc: &Yaml) -> Vec<&Yaml> {
    doc["payloadkeys"].as_vec().expect("payloadkeys").iter().collect()
}

fn check_dict(dict: &Dictionary, keys: &[&Yaml], path: &str, errors: &mut Vec<String>) {
    let any = keys.iter().find(|k| k["key"].as_str() == Some("ANY"));
    for k in keys {
        let Some(name) = k["key"].as_str() else {
            errors.push(format!("{path}: a schema key without a name"));
            continue;
        };
        if name == "ANY" {
            continue;
        }
        match dict.get(name) {
            None => {
                if k["presence"].as_str() == Some("required") {
                    errors.push(format!("{path}: required key {name} is missing"));
                }
            }
            Some(value) => {
                if let Some(os) = removed_on(k) {
                    errors.push(format!("{path}.{name}: Apple removed this key on {os}"));
                }
                check_value(value, k, &format!("{path}.{name}"), errors);
            }
        }
    }
    for (name, value) in dict {
        if keys.iter().any(|k| k["key"].as_str() == Some(name.as_str())) {
            continue;
        }
        match any {
            Some(any) => check_value(value, any, &format!("{path}.{name}"), errors),
            None => errors.push(format!("{path}: key {name} is not in Apple's schema")),
        }
    }
}

fn removed_on(key: &Yaml) -> Option<String> {
    let os = key["supportedOS"].as_hash()?;
    os.iter()
        .find(|(_, v)| !v["removed"].is_badvalue())
        .map(|(name, _)| name.as_str().unwrap_or("?").to_owned())
}

fn check_value(value: &Value, key: &Yaml, path: &str, errors: &mut Vec<String>) {
    let ty = key["type"].as_str().unwrap_or("<missing>");
    let type_ok = match ty {
        "<string>" => value.as_string().is_some(),
        "<integer>" => matches!(value, Value::Integer(_)),
        "<boolean>" => value.as_boolean().is_some(),
        "<data>" => value.as_data().is_some(),
        "<date>" => value.as_date().is_some(),
        "<real>" => matches!(value, Value::Real(_)),
        "<array>" => value.as_array().is_some(),
        "<dictionary>" => value.as_dictionary().is_some(),
        "<any>" => true,
        other => {
            errors.push(format!("{path}: the schema has an unknown type {other}"));
            return;
        }
    };
    if !type_ok {
        errors.push(format!("{path}: expected {ty}, found {value:?}"));
        return;
    }
    if let Some(range) = key["rangelist"].as_vec() {
        let allowed = range.iter().any(|r| match (r, value) {
            (Yaml::String(s), Value::String(v)) => s == v,
            (Yaml::Integer(i), Value::Integer(v)) => v.as_signed() == Some(*i),
            (Yaml::Boolean(b), Value::Boolean(v)) => b == v,
            _ => false,
        });
        if !allowed {
            errors.push(format!("{path}: {value:?} is not in Apple's range list {range:?}"));
        }
    }
    if let Some(i) = value.as_signed_integer() {
        if let Some(min) = key["range"]["min"].as_i64().filter(|min| i < *min) {
            errors.push(format!("{path}: {i} is below Apple's minimum {min}"));
        }
        if let Some(max) = key["range"]["max"].as_i64().filter(|max| i > *max) {
            errors.push(format!("{path}: {i} is above Apple's maximum {max}"));
        }
    }
    if let (Some(s), Some(format)) = (value.as_string(), key["format"].as_str()) {
        let re = Regex::new(format).unwrap_or_else(|e| panic!("{path}: Apple's format {format:?}: {e}"));
        if !re.is_match(s) {
            errors.push(format!("{path}: {s:?} does not match Apple's format {format}"));
        }
    }
    let Some(subkeys) = key["subkeys"].as_vec() else {
        return;
    };
    let subkeys: Vec<&Yaml> = subkeys.iter().collect();
    if let Some(d) = value.as_dictionary() {
        check_dict(d, &subkeys, path, errors);
    } else if let Some(items) = value.as_array() {
        let Some(item_key) = subkeys.first() else {
            return;
        };
        let repetition = &item_key["repetition"];
        let count = i64::try_from(items.len()).unwrap_or(i64::MAX);
        if let Some(min) = repetition["min"].as_i64().filter(|min| count < *min) {
            errors.push(format!("{path}: {count} items, Apple wants at least {min}"));
        }
        if let Some(max) = repetition["max"].as_i64().filter(|max| count > *max) {
            errors.push(format!("{path}: {count} items, Apple wants at most {max}"));
        }
        for (i, item) in items.iter().enumerate() {
            check_value(item, item_key, &format!("{path}[{i}]"), errors);
        }
    }
}

fn assert_schema_valid(test: &str, profile: &[u8]) {
    let Some(schemas) = Schemas::find(test) else {
        return;
    };
    let violations = schemas.violations(&parse(profile));
    assert!(
        violations.is_empty(),
        "the profile breaks Apple's schemas:\n{}\n{}",
        violations.join("\n"),
        String::from_utf8_lossy(profile)
    );
}

/// Structural rules across payloads: the MDM identity is the SCEP payload, UUIDs and
/// identifiers are unique.
fn assert_consistent(profile: &[u8]) {
    let top = parse(profile);
    let scep = payload(&top, "com.apple.security.scep");
    let mdm = payload(&top, "com.apple.mdm");
    assert_eq!(string(mdm, "IdentityCertificateUUID"), string(scep, "PayloadUUID"));
    let mut uuids = HashSet::new();
    let mut ids = HashSet::new();
    assert!(uuids.insert(string(&top, "PayloadUUID").to_owned()));
    for p in payloads(&top) {
        assert!(
            uuids.insert(string(p, "PayloadUUID").to_owned()),
            "duplicate PayloadUUID"
        );
        assert!(
            ids.insert(string(p, "PayloadIdentifier").to_owned()),
            "duplicate PayloadIdentifier"
        );
        assert!(string(p, "PayloadIdentifier").starts_with(string(&top, "PayloadIdentifier")));
    }
}

// ---------------------------------------------------------------------------------------
// Good profiles

#[test]
fn full_profile_has_everything_and_follows_apples_schemas() {
    let (spec, root, server) = full_spec();
    spec.validate().expect("a valid spec");
    let profile = build_enrollment_profile(&spec).expect("a valid spec");
    assert!(profile.starts_with(b"<?xml"));
    assert_schema_valid("full_profile_has_everything_and_follows_apples_schemas", &profile);
    assert_consistent(&profile);

    let top = parse(&profile);
    assert_eq!(string(&top, "PayloadType"), "Configuration");
    assert_eq!(
        top.get("PayloadRemovalDisallowed").and_then(Value::as_boolean),
        Some(true)
    );
    let types: Vec<&str> = payloads(&top).iter().map(|p| string(p, "PayloadType")).collect();
    assert_eq!(
        types,
        [
            "com.apple.security.root",
            "com.apple.security.pkcs1",
            "com.apple.security.scep",
            "com.apple.mdm"
        ]
    );
    let anchors = payloads(&top);
    assert_eq!(
        anchors[0].get("PayloadContent").and_then(Value::as_data),
        Some(&*root.cert.to_der().expect("der"))
    );
    assert_eq!(
        anchors[1].get("PayloadContent").and_then(Value::as_data),
        Some(&*server.cert.to_der().expect("der"))
    );
    assert_eq!(string(anchors[0], "PayloadCertificateFileName"), "Example-Root-CA.cer");

    let mdm = payload(&top, "com.apple.mdm");
    assert_eq!(string(mdm, "Topic"), TOPIC);
    assert_eq!(string(mdm, "ServerURL"), "https://mdm.example.com/mdm");
    assert_eq!(string(mdm, "CheckInURL"), "https://mdm.example.com/checkin");
    assert_eq!(mdm.get("SignMessage").and_then(Value::as_boolean), Some(true));
    assert_eq!(mdm.get("AccessRights").and_then(Value::as_signed_integer), Some(8191));
    assert_eq!(mdm.get("CheckOutWhenRemoved").and_then(Value::as_boolean), Some(true));
    assert_eq!(mdm.get("UseDevelopmentAPNS").and_then(Value::as_boolean), Some(true));
    assert!(mdm.get("EnrollmentMode").is_none());

    let scep = payload(&top, "com.apple.security.scep");
    let content = scep
        .get("PayloadContent")
        .and_then(Value::as_dictionary)
        .expect("SCEP content");
    assert_eq!(string(content, "URL"), "https://mdm.example.com/scep");
    assert_eq!(string(content, "Challenge"), "s3cret-challenge");
    assert_eq!(string(content, "Key Type"), "RSA");
    assert_eq!(content.get("Keysize").and_then(Value::as_signed_integer), Some(2048));
    assert_eq!(content.get("Key Usage").and_then(Value::as_signed_integer), Some(5));
    assert_eq!(
        content.get("CAFingerprint").and_then(Value::as_data).map(<[u8]>::len),
        Some(20)
    );
}

#[test]
fn byod_and_adde_profiles_follow_apples_schemas() {
    let profile = build_enrollment_profile(&byod_spec()).expect("BYOD");
    assert_schema_valid("byod_and_adde_profiles_follow_apples_schemas", &profile);
    assert_consistent(&profile);
    let top = parse(&profile);
    let mdm = payload(&top, "com.apple.mdm");
    assert_eq!(string(mdm, "EnrollmentMode"), "BYOD");
    assert_eq!(string(mdm, "AssignedManagedAppleID"), "ada@example.com");
    assert!(mdm.get("AccessRights").is_none(), "no AccessRights for User Enrollment");

    let mut adde = byod_spec();
    adde.enrollment_mode = Some("ADDE".into());
    adde.access_rights = Some(8191);
    let profile = build_enrollment_profile(&adde).expect("ADDE");
    assert_schema_valid("byod_and_adde_profiles_follow_apples_schemas", &profile);
    let top = parse(&profile);
    assert_eq!(string(payload(&top, "com.apple.mdm"), "EnrollmentMode"), "ADDE");
}

#[test]
fn minimal_profile_follows_apples_schemas() {
    let mut scep = ScepPayloadSpec::new("https://mdm.example.com/scep", "c");
    scep.subject.clear();
    let mut spec = EnrollmentProfileSpec::new("Example", "com.example.mdm", TOPIC, "https://mdm.example.com/mdm", scep);
    spec.description.clear();
    spec.sign_message = false;
    spec.check_out_when_removed = false;
    spec.access_rights = Some(1 | 2 | 64 | 128);
    let profile = build_enrollment_profile(&spec).expect("minimal");
    assert_schema_valid("minimal_profile_follows_apples_schemas", &profile);
    assert_consistent(&profile);
    let top = parse(&profile);
    assert!(top.get("PayloadDescription").is_none());
    assert!(top.get("PayloadRemovalDisallowed").is_none());
    let scep = payload(&top, "com.apple.security.scep");
    let content = scep
        .get("PayloadContent")
        .and_then(Value::as_dictionary)
        .expect("content");
    assert!(content.get("Subject").is_none() && content.get("Name").is_none());
    let mdm = payload(&top, "com.apple.mdm");
    assert!(mdm.get("CheckInURL").is_none() && mdm.get("ServerCapabilities").is_none());
    assert_eq!(mdm.get("SignMessage").and_then(Value::as_boolean), Some(false));
}

#[test]
fn every_build_has_fresh_uuids() {
    let spec = base_spec();
    let a = parse(&build_enrollment_profile(&spec).expect("a"));
    let b = parse(&build_enrollment_profile(&spec).expect("b"));
    assert_ne!(string(&a, "PayloadUUID"), string(&b, "PayloadUUID"));
    for (pa, pb) in payloads(&a).iter().zip(payloads(&b)) {
        assert_ne!(string(pa, "PayloadUUID"), string(pb, "PayloadUUID"));
        assert_eq!(string(pa, "PayloadIdentifier"), string(pb, "PayloadIdentifier"));
    }
}

#[test]
fn http_is_accepted_only_where_documented() {
    // Loopback, as a test convenience.
    let mut spec = base_spec();
    spec.server_url = "http://127.0.0.1:8080/mdm".into();
    spec.check_in_url = Some("http://localhost:8080/checkin".into());
    spec.scep.url = "http://[::1]:8080/scep".into();
    build_enrollment_profile(&spec).expect("loopback http");
    // SCEP over http with the CA pinned.
    let mut spec = base_spec();
    spec.scep.url = "http://scep.example.com/scep".into();
    spec.scep.ca_fingerprint = Some(vec![7; 20]);
    let profile = build_enrollment_profile(&spec).expect("pinned SCEP over http");
    assert_schema_valid("http_is_accepted_only_where_documented", &profile);
}

/// Special characters survive: XML escaping is the writer's job.
#[test]
fn text_is_escaped() {
    let mut spec = base_spec();
    spec.organization = "Smith & Jones <Ltd> \"Ünïcode\" 'q'".into();
    spec.scep.challenge = "a<b>&c\"d'".into();
    let profile = build_enrollment_profile(&spec).expect("escaped");
    let top = parse(&profile);
    assert_eq!(
        string(&top, "PayloadOrganization"),
        "Smith & Jones <Ltd> \"Ünïcode\" 'q'"
    );
    let scep = payload(&top, "com.apple.security.scep");
    let content = scep
        .get("PayloadContent")
        .and_then(Value::as_dictionary)
        .expect("content");
    assert_eq!(string(content, "Challenge"), "a<b>&c\"d'");
}

// ---------------------------------------------------------------------------------------
// Independent readers: plistlib and openssl

const PLISTLIB_SCRIPT: &str = r#"
import json, plistlib, sys
with open(sys.argv[1], "rb") as f:
    p = plistlib.load(f)
def plain(v):
    if isinstance(v, bytes):
        return {"data": v.hex()}
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v
print(json.dumps(plain(p)))
"#;

#[test]
fn python_plistlib_reads_the_profile() {
    let test = "python_plistlib_reads_the_profile";
    let Some(python) = tool(test, "RUSSET_TEST_PYTHON3", "python3", "--version", "python3") else {
        return;
    };
    let (spec, root, _) = full_spec();
    let profile = build_enrollment_profile(&spec).expect("profile");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write(dir.path(), "enroll.mobileconfig", &profile);
    let out = run(&python, &["-c", PLISTLIB_SCRIPT, &path]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from python");

    assert_eq!(v["PayloadType"], "Configuration");
    assert_eq!(v["PayloadVersion"], 1);
    assert_eq!(v["PayloadRemovalDisallowed"], true);
    let content = v["PayloadContent"].as_array().expect("PayloadContent");
    assert_eq!(content.len(), 4);
    assert_eq!(content[0]["PayloadType"], "com.apple.security.root");
    assert_eq!(
        content[0]["PayloadContent"]["data"],
        hex::encode(root.cert.to_der().expect("der"))
    );
    let scep = &content[2];
    let mdm = &content[3];
    assert_eq!(mdm["IdentityCertificateUUID"], scep["PayloadUUID"]);
    assert_eq!(mdm["Topic"], TOPIC);
    assert_eq!(mdm["SignMessage"], true);
    assert_eq!(mdm["AccessRights"], 8191);
    assert_eq!(
        mdm["ServerCapabilities"],
        serde_json::json!([
            "com.apple.mdm.per-user-connections",
            "com.apple.mdm.bootstraptoken",
            "com.apple.mdm.token"
        ])
    );
    let sc = &scep["PayloadContent"];
    assert_eq!(
        sc["Subject"],
        serde_json::json!([[["O", "Example Corp"]], [["CN", "Russet device identity"]]])
    );
    assert_eq!(sc["Keysize"], 2048);
    assert_eq!(sc["Key Usage"], 5);
    assert_eq!(
        sc["CAFingerprint"]["data"],
        hex::encode(root.cert.digest(MessageDigest::sha1()).expect("sha1"))
    );
}

fn signer(name: &str) -> (Issued, Issued) {
    let ca = issue(&ca_spec("Example Profile Signing CA"), None);
    let leaf = issue(&device_spec(name), Some(&ca));
    (ca, leaf)
}

#[test]
fn signed_profile_verifies_with_openssl_smime() {
    let test = "signed_profile_verifies_with_openssl_smime";
    let (spec, _, _) = full_spec();
    let profile = build_enrollment_profile(&spec).expect("profile");
    let (ca, leaf) = signer("Example profile signer");
    let signed = sign_profile(&profile, &leaf.cert, &leaf.key, std::slice::from_ref(&ca.cert)).expect("sign");

    let (content, who) = unsign_profile(&signed).expect("unsign");
    assert_eq!(content, profile);
    assert_eq!(who.to_der().expect("der"), leaf.cert.to_der().expect("der"));

    let Some(openssl) = openssl_cli(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let signed_path = write(dir.path(), "enroll.mobileconfig.der", &signed);
    let out_path = dir.path().join("content.out");
    let out = out_path.to_str().expect("path");
    run(
        &openssl,
        &[
            "smime",
            "-verify",
            "-inform",
            "der",
            "-noverify",
            "-in",
            &signed_path,
            "-out",
            out,
        ],
    );
    assert_eq!(
        std::fs::read(&out_path).expect("content"),
        profile,
        "openssl gives back the profile byte for byte"
    );

    // With the chain checked too (the signer is no S/MIME certificate, hence -purpose any).
    let ca_path = write(dir.path(), "ca.pem", &ca.cert_pem());
    run(
        &openssl,
        &[
            "smime",
            "-verify",
            "-inform",
            "der",
            "-CAfile",
            &ca_path,
            "-purpose",
            "any",
            "-in",
            &signed_path,
            "-out",
            out,
        ],
    );
    let printed = run(
        &openssl,
        &["cms", "-cmsout", "-print", "-inform", "DER", "-in", &signed_path],
    );
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.contains("sha256 (2.16.840.1.101.3.4.2.1)"),
        "signed with SHA-256"
    );
    assert!(printed.contains("Example Profile Signing CA"), "the chain is embedded");
}

#[test]
fn signing_refuses_a_foreign_key_and_unsign_refuses_damage() {
    let profile = build_enrollment_profile(&base_spec()).expect("profile");
    let (_, leaf) = signer("Example profile signer");
    let (_, other) = signer("Another signer");
    let err = sign_profile(&profile, &leaf.cert, &other.key, &[]).expect_err("foreign key");
    assert!(matches!(err, ProfileError::KeyMismatch { .. }), "{err:?}");

    let signed = sign_profile(&profile, &leaf.cert, &leaf.key, &[]).expect("sign");
    // Change one byte of the profile inside the signature.
    let needle = b"com.apple.mgmt.External";
    let at = signed
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("profile inside");
    let mut damaged = signed.clone();
    damaged[at] = b'C';
    let err = unsign_profile(&damaged).expect_err("damaged");
    assert!(
        matches!(&err, ProfileError::BadSignedProfile { detail } if detail.contains("does not verify")),
        "{err:?}"
    );
    assert!(matches!(
        unsign_profile(&profile),
        Err(ProfileError::BadSignedProfile { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Bad specs

fn problems(spec: &EnrollmentProfileSpec) -> Vec<(String, String)> {
    let validated = spec.validate();
    assert!(validated.is_err(), "validate() accepts what the builder refuses");
    match build_enrollment_profile(spec) {
        Err(ProfileError::Invalid { problems }) => {
            problems.into_iter().map(|p| (p.field.to_owned(), p.message)).collect()
        }
        Err(other) => panic!("expected Invalid, got {other:?}"),
        Ok(_) => panic!("the spec was accepted"),
    }
}

#[track_caller]
fn refused(change: impl FnOnce(&mut EnrollmentProfileSpec), field: &str, needle: &str) {
    let mut spec = base_spec();
    change(&mut spec);
    let found = problems(&spec);
    assert_eq!(found.len(), 1, "one problem expected, got {found:?}");
    assert_eq!(found[0].0, field, "{found:?}");
    assert!(
        found[0].1.contains(needle),
        "{:?} should contain {needle:?}",
        found[0].1
    );
}

#[test]
fn bad_specs_get_one_message_per_problem() {
    refused(|s| s.topic = "com.example.mgmt.x".into(), "topic", "com.apple.mgmt.");
    refused(|s| s.topic = "com.apple.mgmt.".into(), "topic", "must start with");
    refused(|s| s.topic = String::new(), "topic", "is empty");
    refused(|s| s.identifier = "enroll".into(), "identifier", "reverse-DNS");
    refused(|s| s.organization = " ".into(), "organization", "is empty");
    refused(
        |s| s.display_name = "a\u{0}b".into(),
        "display_name",
        "control characters",
    );
    refused(
        |s| s.server_url = "http://mdm.example.com/mdm".into(),
        "server_url",
        "https://",
    );
    refused(
        |s| s.server_url = "mdm.example.com/mdm".into(),
        "server_url",
        "is not a URL",
    );
    refused(
        |s| s.server_url = "ftp://mdm.example.com/mdm".into(),
        "server_url",
        "https://",
    );
    refused(
        |s| s.server_url = "https://u:p@mdm.example.com/".into(),
        "server_url",
        "user name or password",
    );
    refused(
        |s| s.check_in_url = Some("http://10.0.0.1/checkin".into()),
        "check_in_url",
        "https://",
    );
    refused(
        |s| s.scep.url = "http://scep.example.com/".into(),
        "scep.url",
        "ca_fingerprint",
    );
    refused(|s| s.access_rights = Some(0), "access_rights", "1 to 8191");
    refused(|s| s.access_rights = Some(8192), "access_rights", "1 to 8191");
    refused(|s| s.access_rights = Some(2), "access_rights", "add 1");
    refused(|s| s.access_rights = Some(1 | 128), "access_rights", "add 64");
    refused(|s| s.access_rights = None, "access_rights", "missing");
    refused(
        |s| {
            s.enrollment_mode = Some("BYOD".into());
            s.assigned_managed_apple_id = Some("ada@example.com".into());
        },
        "access_rights",
        "User Enrollment",
    );
    refused(
        |s| {
            s.enrollment_mode = Some("ManagedAppleID".into());
            s.assigned_managed_apple_id = Some("ada@example.com".into());
        },
        "enrollment_mode",
        "\"BYOD\"",
    );
    refused(
        |s| s.enrollment_mode = Some("ADDE".into()),
        "assigned_managed_apple_id",
        "missing",
    );
    refused(
        |s| s.assigned_managed_apple_id = Some("ada@example.com".into()),
        "assigned_managed_apple_id",
        "account-driven",
    );
    refused(
        |s| {
            s.enrollment_mode = Some("ADDE".into());
            s.assigned_managed_apple_id = Some("ada".into());
        },
        "assigned_managed_apple_id",
        "user@domain",
    );
    refused(
        |s| {
            s.enrollment_mode = Some("BYOD".into());
            s.assigned_managed_apple_id = Some("ada@example.com".into());
            s.access_rights = None;
            s.removal_disallowed = true;
        },
        "removal_disallowed",
        "User Enrollment",
    );
    refused(
        |s| s.server_capabilities.push("com.apple.mdm.teleport".into()),
        "server_capabilities",
        "not a capability",
    );
    refused(
        |s| s.server_capabilities.push("com.apple.mdm.token".into()),
        "server_capabilities",
        "twice",
    );
    refused(
        |s| s.anchor_certs = vec![b"-----BEGIN CERTIFICATE-----".to_vec()],
        "anchor_certs",
        "DER",
    );
    refused(|s| s.scep.key_size = 1024, "scep.key_size", "too weak");
    refused(|s| s.scep.key_size = 3072, "scep.key_size", "2048 or 4096");
    refused(|s| s.scep.key_usage = 4, "scep.key_usage", "sign");
    refused(|s| s.scep.key_usage = 0, "scep.key_usage", "1 (signing)");
    refused(|s| s.scep.challenge = String::new(), "scep.challenge", "is empty");
    refused(|s| s.scep.challenge = " pad".into(), "scep.challenge", "spaces");
    refused(
        |s| s.scep.ca_fingerprint = Some(vec![0; 32]),
        "scep.ca_fingerprint",
        "SHA-1 (20 bytes)",
    );
    refused(
        |s| s.scep.subject.push(("Email".into(), "x".into())),
        "scep.subject",
        "not a subject attribute",
    );
    refused(
        |s| s.scep.subject.push(("C".into(), "USA".into())),
        "scep.subject",
        "two-letter",
    );
    refused(
        |s| s.scep.subject.push(("2.5.4.3".into(), String::new())),
        "scep.subject",
        "is empty",
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let mut spec = base_spec();
    spec.topic = "wrong".into();
    spec.server_url = "http://mdm.example.com".into();
    spec.scep.key_size = 512;
    spec.access_rights = Some(2);
    let found = problems(&spec);
    let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        ["topic", "server_url", "access_rights", "scep.key_size"],
        "{found:?}"
    );
    let message = build_enrollment_profile(&spec).expect_err("invalid").to_string();
    assert!(
        message.starts_with("the enrollment profile settings are not valid: topic "),
        "{message}"
    );
    assert!(message.contains("; scep.key_size 512 is not a key size"), "{message}");
}

/// The schema checker itself catches what it should (so that a pass means something).
#[test]
fn the_schema_checker_catches_violations() {
    let Some(schemas) = Schemas::find("the_schema_checker_catches_violations") else {
        return;
    };
    let profile = build_enrollment_profile(&base_spec()).expect("profile");
    let mut top = parse(&profile);
    assert!(schemas.violations(&top).is_empty());
    let content = top
        .get_mut("PayloadContent")
        .and_then(Value::as_array_mut)
        .expect("content");
    let mdm = content
        .iter_mut()
        .filter_map(Value::as_dictionary_mut)
        .find(|p| p.get("PayloadType").and_then(Value::as_string) == Some("com.apple.mdm"))
        .expect("mdm");
    mdm.remove("Topic");
    mdm.insert("ServerURL".into(), Value::String("http://x".into()));
    mdm.insert("SignMessage".into(), Value::String("yes".into()));
    mdm.insert("ManagedAppleID".into(), Value::String("a@b.c".into()));
    mdm.insert("Bogus".into(), Value::Boolean(true));
    mdm.insert("EnrollmentMode".into(), Value::String("ManagedAppleID".into()));
    mdm.insert(
        "ServerCapabilities".into(),
        Value::Array(vec![Value::String("com.apple.mdm.teleport".into())]),
    );
    top.insert("PayloadVersion".into(), Value::Integer(2.into()));
    let found = schemas.violations(&top).join("\n");
    for needle in [
        "required key Topic is missing",
        "ServerURL: \"http://x\" does not match",
        "SignMessage: expected <boolean>",
        "ManagedAppleID: Apple removed this key",
        "key Bogus is not in Apple's schema",
        "EnrollmentMode: String(\"ManagedAppleID\") is not in Apple's range list",
        "ServerCapabilities[0]",
        ".PayloadVersion: Integer(2) is not in Apple's range list",
    ] {
        assert!(found.contains(needle), "{needle:?} not reported in:\n{found}");
    }
}
