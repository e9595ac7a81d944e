//! Russet's MDM plists against an independent implementation, Python's `plistlib`: bodies
//! written by plistlib (XML and binary) decode, and what Russet writes (commands, check-in
//! answers) reads back in plistlib with the same values.
//!
//! Needs `python3` on `PATH`; without it each test prints a loud SKIPPED line and passes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use russet_apple::mdm::checkin::{bootstrap_token_response, get_token_response, user_authenticate_accept};
use russet_apple::mdm::command::{DeviceLock, Settings, SettingsItem};
use russet_apple::mdm::{CheckinMessage, CommandRequest, EnrollmentKind, Status, decode_checkin, decode_report};

fn python(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("python3"))
            .find(|p| p.is_file())
    });
    let usable = found.filter(|p| {
        Command::new(p)
            .args(["-c", "import plistlib"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if usable.is_none() {
        eprintln!("*** SKIPPED {test}: python3 with plistlib is not on PATH ***");
    }
    usable
}

/// Runs a Python program with `stdin` and returns its standard output.
fn run(py: &Path, program: &str, stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(py)
        .args(["-c", program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn checkins_written_by_plistlib_decode() {
    let Some(py) = python("checkins_written_by_plistlib_decode") else {
        return;
    };
    for fmt in ["FMT_XML", "FMT_BINARY"] {
        let body = run(
            &py,
            &format!(
                r#"import plistlib, sys
sys.stdout.buffer.write(plistlib.dumps({{
    "MessageType": "Authenticate",
    "Topic": "com.apple.mgmt.External.0f3c",
    "UDID": "00008101-000A1B2C3D4E5F60",
    "DeviceName": "Zoë's <iPad> & co",
    "SerialNumber": "DMPXK0ABCD12",
    "OSVersion": "18.1",
}}, fmt=plistlib.{fmt}))"#
            ),
            b"",
        );
        let c = decode_checkin(&body).unwrap_or_else(|e| panic!("{fmt}: {e}"));
        assert_eq!(c.enrollment.id, "00008101-000A1B2C3D4E5F60");
        match c.message {
            CheckinMessage::Authenticate {
                topic,
                device_name,
                serial_number,
                ..
            } => {
                assert_eq!(topic, "com.apple.mgmt.External.0f3c");
                assert_eq!(device_name.as_deref(), Some("Zoë's <iPad> & co"));
                assert_eq!(serial_number.as_deref(), Some("DMPXK0ABCD12"));
            }
            other => panic!("{other:?}"),
        }

        let body = run(
            &py,
            &format!(
                r#"import plistlib, sys
sys.stdout.buffer.write(plistlib.dumps({{
    "MessageType": "TokenUpdate",
    "Topic": "com.apple.mgmt.External.0f3c",
    "UDID": "5C5AE4E2-6A83-5B4E-9D3C-29C1C9D37B10",
    "UserID": "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    "UserShortName": "zoe@example.edu",
    "Token": bytes(range(32)),
    "PushMagic": "A1B2C3D4-0000-4000-8000-123456789ABC",
    "AwaitingConfiguration": False,
}}, fmt=plistlib.{fmt}))"#
            ),
            b"",
        );
        let c = decode_checkin(&body).unwrap_or_else(|e| panic!("{fmt}: {e}"));
        assert_eq!(c.enrollment.kind, EnrollmentKind::SharedIPadUser);
        assert_eq!(c.enrollment.id, "5C5AE4E2-6A83-5B4E-9D3C-29C1C9D37B10:zoe@example.edu");
        match c.message {
            CheckinMessage::TokenUpdate { token, push_magic, .. } => {
                assert_eq!(token, (0u8..32).collect::<Vec<u8>>());
                assert_eq!(push_magic, "A1B2C3D4-0000-4000-8000-123456789ABC");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn reports_written_by_plistlib_decode() {
    let Some(py) = python("reports_written_by_plistlib_decode") else {
        return;
    };
    let body = run(
        &py,
        r#"import plistlib, sys
sys.stdout.buffer.write(plistlib.dumps({
    "Status": "Acknowledged",
    "UDID": "00008101-000A1B2C3D4E5F60",
    "CommandUUID": "9B0C8E1A-2F3D-4C5B-8A7E-6D5C4B3A2F1E",
    "RequestType": "DeviceInformation",
    "QueryResponses": {
        "DeviceName": "Lab iPad 7",
        "BatteryLevel": 0.5,
        "IsSupervised": True,
        "DeviceCapacity": 64.0,
        "WiFiMAC": "3c:22:fb:00:00:01",
    },
}))"#,
        b"",
    );
    let r = decode_report(&body).unwrap();
    assert_eq!(r.status, Status::Acknowledged);
    assert_eq!(r.raw, body);
    let inv = r.inventory().unwrap();
    assert_eq!(inv.device_name.as_deref(), Some("Lab iPad 7"));
    assert_eq!(inv.battery_level, Some(0.5));
    assert_eq!(inv.is_supervised, Some(true));
    assert_eq!(inv.device_capacity_gb, Some(64.0));
    assert_eq!(inv.wifi_mac.as_deref(), Some("3c:22:fb:00:00:01"));
}

/// plistlib reads a plist from stdin and prints it as JSON (data as base64).
const TO_JSON: &str = r#"import base64, json, plistlib, sys
def conv(v):
    if isinstance(v, bytes):
        return {"data": base64.b64encode(v).decode()}
    if isinstance(v, dict):
        return {k: conv(x) for k, x in v.items()}
    if isinstance(v, list):
        return [conv(x) for x in v]
    return v
print(json.dumps(conv(plistlib.loads(sys.stdin.buffer.read()))))"#;

fn plistlib_json(py: &Path, plist: &[u8]) -> serde_json::Value {
    serde_json::from_slice(&run(py, TO_JSON, plist)).unwrap()
}

#[test]
fn plistlib_reads_what_russet_writes() {
    let Some(py) = python("plistlib_reads_what_russet_writes") else {
        return;
    };
    let uuid = "1C2D3E4F-5A6B-4C7D-8E9F-0A1B2C3D4E5F";
    let lock = CommandRequest::DeviceLock(DeviceLock {
        pin: Some("246810".into()),
        message: Some("IT's <locked> & \"safe\"".into()),
        phone_number: None,
    })
    .build(uuid)
    .unwrap();
    assert_eq!(
        plistlib_json(&py, &lock.plist),
        serde_json::json!({
            "CommandUUID": uuid,
            "Command": {"RequestType": "DeviceLock", "PIN": "246810", "Message": "IT's <locked> & \"safe\""}
        })
    );

    let settings = CommandRequest::Settings(Settings {
        settings: vec![
            SettingsItem::DeviceName {
                device_name: "Zoë's Mac".into(),
            },
            SettingsItem::Bluetooth { enabled: false },
        ],
    })
    .build(uuid)
    .unwrap();
    assert_eq!(
        plistlib_json(&py, &settings.plist)["Command"]["Settings"],
        serde_json::json!([
            {"Item": "DeviceName", "DeviceName": "Zoë's Mac"},
            {"Item": "Bluetooth", "Enabled": false}
        ])
    );

    assert_eq!(
        plistlib_json(&py, &bootstrap_token_response(Some(&[0, 1, 2, 255]))),
        serde_json::json!({"BootstrapToken": {"data": "AAEC/w=="}})
    );
    assert_eq!(
        plistlib_json(&py, &user_authenticate_accept()),
        serde_json::json!({"DigestChallenge": ""})
    );
    assert_eq!(
        plistlib_json(&py, &get_token_response(b"token")),
        serde_json::json!({"TokenData": {"data": "dG9rZW4="}})
    );
}
