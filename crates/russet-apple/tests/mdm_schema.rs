//! Checks Russet's MDM plists against Apple's own device management schema (the YAML of
//! `apple-device-management/mdm`, kept beside the repository in `shared/`), read here
//! independently of Russet's table:
//!
//! * the command table in `russet_apple::mdm::schema` lists exactly Apple's request types, and
//!   every key it lists agrees with Apple's (type, presence, allowed values, nested keys);
//! * every command Russet builds from a typed request validates against Apple's definition,
//!   walked from the YAML;
//! * for every request type, a command made from Apple's definition is accepted by
//!   `validate_raw_command`, and one missing a required key or with a key of the wrong type
//!   is refused naming that key;
//! * every check-in message type Apple defines decodes with `decode_checkin` from its
//!   required keys, and with all of its keys.
//!
//! Without the schema directory each test prints a loud SKIPPED line and passes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use plist::{Dictionary, Value};
use russet_apple::mdm::command::{
    DeviceInformation, DeviceLock, EraseDevice, InstalledApplicationList, ProfileList, RemoveProfile, RestartDevice,
    ReturnToService, Settings, SettingsItem,
};
use russet_apple::mdm::schema::{self, KeySpec, Presence, RangeList};
use russet_apple::mdm::{CommandRequest, MdmError, decode_checkin, validate_raw_command};
use yaml_rust2::{Yaml, YamlLoader};

fn schema_dir(test: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/apple-device-management/mdm");
    if dir.join("commands").is_dir() && dir.join("checkin").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "*** SKIPPED {test}: Apple's device management schema is not at {} (it lives in shared/ beside the repository) ***",
            dir.display()
        );
        None
    }
}

/// request type → the YAML document, for every file of a folder.
fn load(dir: &Path, folder: &str) -> BTreeMap<String, Yaml> {
    let mut out = BTreeMap::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).unwrap();
        let doc = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .remove(0);
        let rt = doc["payload"]["requesttype"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no payload.requesttype", p.display()))
            .to_owned();
        assert!(out.insert(rt.clone(), doc).is_none(), "{rt} defined twice");
    }
    out
}

fn keys(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

fn name(k: &Yaml) -> &str {
    k["key"].as_str().unwrap()
}

fn apple_type(k: &Yaml) -> &str {
    k["type"].as_str().unwrap()
}

fn is_scalar(t: &str) -> bool {
    !matches!(t, "<array>" | "<dictionary>")
}

fn is_wildcard(key: &str) -> bool {
    key.starts_with("ANY")
}

// ---------------------------------------------------------------------------------------
// The table agrees with Apple's.

fn compare(path: &str, ours: &[KeySpec], apple: &[Yaml], problems: &mut Vec<String>) {
    let our_names: Vec<&str> = ours.iter().map(|k| k.key).collect();
    let apple_names: Vec<&str> = apple.iter().map(name).collect();
    for n in &apple_names {
        if !our_names.contains(n) {
            problems.push(format!("{path}.{n}: in Apple's schema, missing from the table"));
        }
    }
    for n in &our_names {
        if !apple_names.contains(n) {
            problems.push(format!("{path}.{n}: in the table, not in Apple's schema"));
        }
    }
    for k in apple {
        let Some(spec) = ours.iter().find(|s| s.key == name(k)) else {
            continue;
        };
        let p = format!("{path}.{}", spec.key);
        let t = apple_type(k);
        if spec.value_type.apple_name() != t {
            problems.push(format!("{p}: type {} but Apple says {t}", spec.value_type.apple_name()));
        }
        let presence = match k["presence"].as_str() {
            Some("required") => Presence::Required,
            Some("optional") => Presence::Optional,
            None => Presence::Element,
            Some(other) => panic!("{p}: presence {other}"),
        };
        if spec.presence != presence {
            problems.push(format!("{p}: presence {:?} but Apple says {presence:?}", spec.presence));
        }
        // Apple lists the values of a string element as its sub-keys; the table as a rangelist.
        let apple_values: Option<Vec<Yaml>> = if is_scalar(t) && !keys(&k["subkeys"]).is_empty() {
            Some(
                keys(&k["subkeys"])
                    .iter()
                    .map(|s| Yaml::String(name(s).to_owned()))
                    .collect(),
            )
        } else {
            k["rangelist"].as_vec().cloned()
        };
        let our_values: Option<Vec<Yaml>> = match spec.rangelist {
            RangeList::None => None,
            RangeList::Strings(v) => Some(v.iter().map(|s| Yaml::String((*s).to_owned())).collect()),
            RangeList::Integers(v) => Some(v.iter().map(|i| Yaml::Integer(*i)).collect()),
        };
        if apple_values != our_values {
            problems.push(format!(
                "{p}: allowed values {our_values:?} but Apple says {apple_values:?}"
            ));
        }
        if is_scalar(t) {
            if !spec.subkeys.is_empty() {
                problems.push(format!("{p}: a scalar with sub-keys in the table"));
            }
        } else {
            compare(&p, spec.subkeys, keys(&k["subkeys"]), problems);
        }
    }
}

#[test]
fn the_command_table_agrees_with_apple() {
    let Some(dir) = schema_dir("the_command_table_agrees_with_apple") else {
        return;
    };
    let apple = load(&dir, "commands");
    let ours: Vec<&str> = schema::request_types().collect();
    let theirs: Vec<&str> = apple.keys().map(String::as_str).collect();
    assert_eq!(ours, theirs, "the table's request types differ from Apple's");
    let mut problems = Vec::new();
    let mut compared = 0;
    for spec in schema::COMMANDS {
        let doc = &apple[spec.request_type];
        compare(spec.request_type, spec.keys, keys(&doc["payloadkeys"]), &mut problems);
        compared += count(spec.keys);
    }
    assert!(
        problems.is_empty(),
        "the table disagrees with Apple's schema:\n{}",
        problems.join("\n")
    );
    assert!(compared > 250, "only {compared} keys compared");
}

fn count(keys: &[KeySpec]) -> usize {
    keys.iter().map(|k| 1 + count(k.subkeys)).sum()
}

// ---------------------------------------------------------------------------------------
// An independent validator walking Apple's YAML.

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "<string>" => matches!(v, Value::String(_)),
        "<integer>" => matches!(v, Value::Integer(_)),
        "<real>" => matches!(v, Value::Real(_) | Value::Integer(_)),
        "<boolean>" => matches!(v, Value::Boolean(_)),
        "<date>" => matches!(v, Value::Date(_)),
        "<data>" => matches!(v, Value::Data(_)),
        "<array>" => matches!(v, Value::Array(_)),
        "<dictionary>" => matches!(v, Value::Dictionary(_)),
        "<any>" => true,
        other => panic!("unknown Apple type {other}"),
    }
}

fn yaml_matches(y: &Yaml, v: &Value) -> bool {
    match (y, v) {
        (Yaml::String(s), Value::String(p)) => s == p,
        (Yaml::Integer(i), Value::Integer(p)) => p.as_signed() == Some(*i),
        _ => false,
    }
}

fn apple_validate_dict(path: &str, d: &Dictionary, apple: &[Yaml], skip: &[&str], problems: &mut Vec<String>) {
    let wildcard = apple.iter().find(|k| is_wildcard(name(k)));
    for (key, value) in d {
        if skip.contains(&key.as_str()) {
            continue;
        }
        match apple.iter().find(|k| name(k) == key).or(wildcard) {
            Some(k) => apple_validate_value(&format!("{path}.{key}"), value, k, problems),
            None => problems.push(format!("{path}.{key}: not in Apple's schema")),
        }
    }
    for k in apple {
        if k["presence"].as_str() == Some("required") && !is_wildcard(name(k)) && !d.contains_key(name(k)) {
            problems.push(format!("{path}.{}: required by Apple, missing", name(k)));
        }
    }
}

fn apple_validate_value(path: &str, v: &Value, k: &Yaml, problems: &mut Vec<String>) {
    let t = apple_type(k);
    if !type_ok(t, v) {
        problems.push(format!("{path}: Apple wants {t}, got {v:?}"));
        return;
    }
    if let Some(range) = k["rangelist"].as_vec()
        && !range.iter().any(|r| yaml_matches(r, v))
    {
        problems.push(format!("{path}: {v:?} not in Apple's rangelist {range:?}"));
    }
    let sub = keys(&k["subkeys"]);
    if is_scalar(t) {
        if !sub.is_empty() && !sub.iter().any(|s| Some(name(s)) == v.as_string()) {
            problems.push(format!("{path}: {v:?} is not one of Apple's listed values"));
        }
        return;
    }
    match v {
        Value::Dictionary(d) if !sub.is_empty() => apple_validate_dict(path, d, sub, &[], problems),
        Value::Array(items) if !sub.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                if sub.len() == 1 {
                    apple_validate_value(&p, item, &sub[0], problems);
                } else {
                    // Alternatives: at least one must fit.
                    let fits = sub.iter().any(|alt| {
                        let mut e = Vec::new();
                        apple_validate_value(&p, item, alt, &mut e);
                        e.is_empty()
                    });
                    if !fits {
                        problems.push(format!("{p}: fits none of Apple's forms"));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Checks a whole command plist against Apple's definition of its request type.
fn apple_validate_command(plist: &[u8], apple: &BTreeMap<String, Yaml>) -> (String, Vec<String>) {
    let top: Value = plist::from_bytes(plist).unwrap();
    let top = top.as_dictionary().unwrap();
    let mut problems = Vec::new();
    assert!(
        top.get("CommandUUID")
            .and_then(Value::as_string)
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(top.len(), 2, "{top:?}");
    let command = top.get("Command").and_then(Value::as_dictionary).unwrap();
    let rt = command
        .get("RequestType")
        .and_then(Value::as_string)
        .unwrap()
        .to_owned();
    let doc = apple
        .get(&rt)
        .unwrap_or_else(|| panic!("{rt} is not an Apple request type"));
    apple_validate_dict(
        "Command",
        command,
        keys(&doc["payloadkeys"]),
        &["RequestType"],
        &mut problems,
    );
    (rt, problems)
}

fn sample_profile() -> Vec<u8> {
    let mut d = Dictionary::new();
    d.insert("PayloadContent".into(), Value::Array(vec![]));
    d.insert(
        "PayloadIdentifier".into(),
        Value::String("com.example.schema-test".into()),
    );
    d.insert("PayloadType".into(), Value::String("Configuration".into()));
    d.insert(
        "PayloadUUID".into(),
        Value::String("4C1D2B0E-5A6F-4B3C-9D8E-7F6A5B4C3D2E".into()),
    );
    d.insert("PayloadVersion".into(), Value::Integer(1.into()));
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &Value::Dictionary(d)).unwrap();
    out
}

/// Every kind of command Russet builds, with every option it has.
fn every_typed_request() -> Vec<CommandRequest> {
    let profile = STANDARD.encode(sample_profile());
    vec![
        CommandRequest::device_information(),
        CommandRequest::DeviceInformation(DeviceInformation {
            queries: Some(
                russet_apple::mdm::command::DEFAULT_DEVICE_QUERIES
                    .iter()
                    .chain(["OrganizationInfo", "MDMOptions", "EACSPreflight"].iter())
                    .map(|q| (*q).to_owned())
                    .collect(),
            ),
        }),
        CommandRequest::SecurityInfo {},
        CommandRequest::ProfileList(ProfileList::default()),
        CommandRequest::ProfileList(ProfileList {
            managed_only: Some(true),
        }),
        CommandRequest::install_profile(&sample_profile()),
        CommandRequest::RemoveProfile(RemoveProfile {
            identifier: "com.example.schema-test".into(),
        }),
        CommandRequest::InstalledApplicationList(InstalledApplicationList::default()),
        CommandRequest::InstalledApplicationList(InstalledApplicationList {
            identifiers: Some(vec!["com.apple.Pages".into(), "com.apple.Keynote".into()]),
            managed_apps_only: Some(false),
            items: Some(vec!["Name".into(), "ShortVersion".into(), "HasUpdateAvailable".into()]),
        }),
        CommandRequest::DeviceLock(DeviceLock::default()),
        CommandRequest::DeviceLock(DeviceLock {
            pin: Some("135790".into()),
            message: Some("Locked by IT".into()),
            phone_number: Some("+1 (555) 010-0000".into()),
        }),
        CommandRequest::EraseDevice(EraseDevice::default()),
        CommandRequest::EraseDevice(EraseDevice {
            pin: Some("000000".into()),
            preserve_data_plan: Some(true),
            disallow_proximity_setup: Some(false),
            obliteration_behavior: Some("ObliterateWithWarning".into()),
            return_to_service: Some(ReturnToService {
                enabled: true,
                wifi_profile: Some(profile.clone()),
                mdm_profile: Some(profile),
            }),
        }),
        CommandRequest::RestartDevice(RestartDevice::default()),
        CommandRequest::RestartDevice(RestartDevice {
            notify_user: Some(true),
            rebuild_kernel_cache: Some(true),
            kext_paths: Some(vec!["/Library/Extensions/Example.kext".into()]),
        }),
        CommandRequest::DeviceConfigured {},
        CommandRequest::Settings(Settings {
            settings: vec![
                SettingsItem::DeviceName {
                    device_name: "Lab iPad 7".into(),
                },
                SettingsItem::HostName {
                    host_name: "lab-7.example.org".into(),
                },
                SettingsItem::TimeZone {
                    time_zone: "Europe/Paris".into(),
                },
                SettingsItem::Bluetooth { enabled: true },
                SettingsItem::DataRoaming { enabled: false },
                SettingsItem::VoiceRoaming { enabled: true },
                SettingsItem::PersonalHotspot { enabled: false },
            ],
        }),
    ]
}

#[test]
fn every_generated_command_validates_against_apple() {
    let Some(dir) = schema_dir("every_generated_command_validates_against_apple") else {
        return;
    };
    let apple = load(&dir, "commands");
    let mut seen = Vec::new();
    for request in every_typed_request() {
        let raw = request
            .build("6E1F7C2A-3B4D-4E5F-8A9B-0C1D2E3F4A5B")
            .unwrap_or_else(|e| panic!("{}: {e}", request.request_type()));
        let (rt, problems) = apple_validate_command(&raw.plist, &apple);
        assert_eq!(rt, request.request_type());
        assert!(
            problems.is_empty(),
            "{rt} does not validate against Apple's schema: {problems:#?}"
        );
        // And the raw validator accepts what was built.
        validate_raw_command(&raw.plist).unwrap_or_else(|e| panic!("{rt}: {e}"));
        seen.push(rt);
    }
    for rt in [
        "DeviceInformation",
        "SecurityInfo",
        "ProfileList",
        "InstallProfile",
        "RemoveProfile",
        "InstalledApplicationList",
        "DeviceLock",
        "EraseDevice",
        "RestartDevice",
        "DeviceConfigured",
        "Settings",
    ] {
        assert!(seen.iter().any(|s| s == rt), "{rt} not generated");
    }
}

// ---------------------------------------------------------------------------------------
// Commands made from Apple's definitions, for every request type.

/// A value of Apple's key `k`: the first allowed value, else something of the right type.
fn sample(k: &Yaml, all: bool) -> Value {
    let t = apple_type(k);
    if let Some(first) = k["rangelist"].as_vec().and_then(|r| r.first()) {
        return match first {
            Yaml::String(s) => Value::String(s.clone()),
            Yaml::Integer(i) => Value::Integer((*i).into()),
            other => panic!("{}: rangelist value {other:?}", name(k)),
        };
    }
    let sub = keys(&k["subkeys"]);
    match t {
        "<string>" => match sub.first() {
            Some(v) => Value::String(name(v).to_owned()),
            None => Value::String(format!("sample {}", name(k))),
        },
        "<integer>" => Value::Integer(1.into()),
        "<real>" => Value::Real(1.5),
        "<boolean>" => Value::Boolean(true),
        "<date>" => Value::Date(std::time::SystemTime::UNIX_EPOCH.into()),
        "<data>" => Value::Data(b"sample data".to_vec()),
        "<any>" => Value::String("anything".into()),
        "<array>" => match sub.first() {
            Some(element) => Value::Array(vec![sample(element, all)]),
            None => Value::Array(vec![]),
        },
        "<dictionary>" => Value::Dictionary(sample_dict(sub, all)),
        other => panic!("unknown type {other}"),
    }
}

fn sample_dict(keys: &[Yaml], all: bool) -> Dictionary {
    let mut d = Dictionary::new();
    for k in keys {
        let required = k["presence"].as_str() == Some("required");
        if !(all || required) {
            continue;
        }
        let key = if is_wildcard(name(k)) {
            "someKey".to_owned()
        } else {
            name(k).to_owned()
        };
        d.insert(key, sample(k, all));
    }
    d
}

fn command_plist(rt: &str, command: Dictionary) -> Vec<u8> {
    let mut c = Dictionary::new();
    c.insert("RequestType".into(), Value::String(rt.into()));
    for (k, v) in command {
        c.insert(k, v);
    }
    let mut top = Dictionary::new();
    top.insert("CommandUUID".into(), Value::String(format!("schema-test-{rt}")));
    top.insert("Command".into(), Value::Dictionary(c));
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &Value::Dictionary(top)).unwrap();
    out
}

fn wrong_value(k: &Yaml) -> Option<Value> {
    match apple_type(k) {
        "<any>" => None,
        "<string>" => Some(Value::Integer(7.into())),
        _ => Some(Value::String("wrong type".into())),
    }
}

#[test]
fn raw_commands_made_from_apple_definitions() {
    let Some(dir) = schema_dir("raw_commands_made_from_apple_definitions") else {
        return;
    };
    let apple = load(&dir, "commands");
    let mut checked = 0;
    for (rt, doc) in &apple {
        let payload = keys(&doc["payloadkeys"]);
        for all in [false, true] {
            let body = command_plist(rt, sample_dict(payload, all));
            let (_, problems) = apple_validate_command(&body, &apple);
            assert!(
                problems.is_empty(),
                "the sample of {rt} is not valid for Apple: {problems:?}"
            );
            let raw = validate_raw_command(&body).unwrap_or_else(|e| panic!("{rt} (all keys: {all}): {e}"));
            assert_eq!(raw.request_type, *rt);
            checked += 1;
        }
        for k in payload {
            let full = sample_dict(payload, true);
            if is_wildcard(name(k)) {
                continue;
            }
            if k["presence"].as_str() == Some("required") {
                let mut without = full.clone();
                without.remove(name(k));
                let e = validate_raw_command(&command_plist(rt, without)).unwrap_err();
                let fields = e
                    .field_errors()
                    .unwrap_or_else(|| panic!("{rt} without {}: {e}", name(k)));
                let path = format!("Command.{}", name(k));
                assert!(fields.contains_key(&path), "{rt} without {}: {fields:?}", name(k));
                checked += 1;
            }
            if let Some(wrong) = wrong_value(k) {
                let mut bad = full.clone();
                bad.insert(name(k).to_owned(), wrong);
                let e = validate_raw_command(&command_plist(rt, bad)).unwrap_err();
                let fields = e
                    .field_errors()
                    .unwrap_or_else(|| panic!("{rt} wrong {}: {e}", name(k)));
                let path = format!("Command.{}", name(k));
                assert!(
                    fields.get(&path).is_some_and(|m| m.starts_with("must be")),
                    "{rt} with a wrong {}: {fields:?}",
                    name(k)
                );
                checked += 1;
            }
        }
        let mut unknown = sample_dict(payload, false);
        unknown.insert("NotAnAppleKey".into(), Value::Boolean(true));
        let e = validate_raw_command(&command_plist(rt, unknown)).unwrap_err();
        assert!(
            e.field_errors()
                .is_some_and(|f| f.contains_key("Command.NotAnAppleKey")),
            "{rt}: {e}"
        );
    }
    assert!(checked > 150, "only {checked} checks");
}

// ---------------------------------------------------------------------------------------
// Check-in messages.

fn checkin_body(doc: &Yaml, all: bool) -> Dictionary {
    let mut d = sample_dict(keys(&doc["payloadkeys"]), all);
    // Identifiers must name something real for the message to be attributed.
    for id in ["UDID", "EnrollmentID", "UserID", "EnrollmentUserID", "UserShortName"] {
        if d.contains_key(id) {
            d.insert(id.into(), Value::String(format!("{id}-value")));
        }
    }
    if !d.contains_key("UDID") && !d.contains_key("EnrollmentID") {
        d.insert("UDID".into(), Value::String("UDID-value".into()));
    }
    d
}

fn xml(d: &Dictionary) -> Vec<u8> {
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &Value::Dictionary(d.clone())).unwrap();
    out
}

#[test]
fn every_checkin_message_type_decodes() {
    let Some(dir) = schema_dir("every_checkin_message_type_decodes") else {
        return;
    };
    let apple = load(&dir, "checkin");
    let ours: Vec<&str> = {
        let mut v = russet_apple::mdm::checkin::MESSAGE_TYPES.to_vec();
        v.sort_unstable();
        v
    };
    let theirs: Vec<&str> = apple.keys().map(String::as_str).collect();
    assert_eq!(ours, theirs, "check-in message types differ from Apple's");
    for (mt, doc) in &apple {
        for all in [false, true] {
            let body = checkin_body(doc, all);
            let c = decode_checkin(&xml(&body)).unwrap_or_else(|e| panic!("{mt} (all keys: {all}): {e}"));
            assert_eq!(c.message.message_type(), mt);
            assert_eq!(c.raw, body);
        }
        // A key of the wrong type is either ignored or refused naming the key.
        let mut refused = 0;
        for k in keys(&doc["payloadkeys"]) {
            let Some(wrong) = wrong_value(k) else { continue };
            let mut body = checkin_body(doc, true);
            body.insert(name(k).to_owned(), wrong);
            match decode_checkin(&xml(&body)) {
                Ok(_) => {}
                Err(e @ MdmError::WrongType { .. }) => {
                    assert!(e.to_string().contains(name(k)), "{mt}: {e}");
                    refused += 1;
                }
                Err(e) => panic!("{mt} with a wrong {}: unexpected {e:?}", name(k)),
            }
        }
        assert!(refused > 0, "{mt}: no key type is checked");
    }
}
