//! `russet demo --non-interactive`, as CI runs it: the whole story (push certificate, ADE
//! token, sync of 1,000 devices, a default profile with user affinity awaiting configuration,
//! 50 devices activating through Setup Assistant, DeviceInformation) with its checks, on the
//! real binary.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_russet");

#[test]
fn the_demo_runs_its_story_and_its_checks_pass() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--non-interactive", "--dir"])
        .arg(dir.path())
        .output()
        .expect("russet demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for expected in [
        "1000 devices synced",
        "50 enrolled, 50 released from Setup Assistant",
        "50 of 50 answered",
        "user alex",
        "Every step of the demo checked out.",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    // Russet's data stayed in the directory given.
    assert!(dir.path().join("data").join("russet.db").exists());
}

#[test]
fn the_demo_refuses_impossible_numbers() {
    let out = Command::new(BIN)
        .args(["demo", "--non-interactive", "--devices", "10", "--activate", "20"])
        .output()
        .expect("russet demo runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--activate (20) cannot exceed --devices (10)"),
        "{stderr}"
    );
}
