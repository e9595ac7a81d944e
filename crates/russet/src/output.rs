//! Output for the terminal: tables, dates, JSON, and following a job's progress.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use comfy_table::{Table, presets};
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;

pub fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(header.to_vec());
    table
}

/// A JSON value as plain text; `-` for null.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM UTC`.
pub fn date(v: &Value) -> String {
    match v.as_str() {
        Some(s) if s.len() >= 16 => format!("{} {} UTC", &s[..10], &s[11..16]),
        _ => text(v),
    }
}

pub fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// A two-column table of labels and values, without a header.
pub fn key_value_table() -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table
}

/// Polls a job until it ends, printing its progress to standard error as it changes.
/// Returns the finished job; a failed job is an error.
pub async fn follow_job(c: &Client, id: i64, quiet: bool) -> Result<Value> {
    let mut last = String::new();
    loop {
        let job: Value = c.json(c.request(Method::GET, &format!("/api/v1/jobs/{id}"))).await?;
        let line = progress_line(&job);
        if !quiet && line != last {
            let _ = writeln!(std::io::stderr(), "{line}");
            last = line;
        }
        match job["status"].as_str() {
            Some("running") => tokio::time::sleep(Duration::from_millis(500)).await,
            Some("failed") | Some("interrupted") => bail!(
                "job {id} {}: {}",
                job["status"].as_str().unwrap_or(""),
                text(&job["error"])
            ),
            _ => return Ok(job),
        }
    }
}

fn progress_line(job: &Value) -> String {
    let p = &job["progress"];
    let n = |k: &str| p[k].as_i64().unwrap_or(0);
    match job["kind"].as_str() {
        Some("sync") => format!(
            "{} sync: {} pages, {} devices received ({} new, {} updated, {} moved in, {} removed){}",
            text(if p["mode"].is_null() { &job["mode"] } else { &p["mode"] }),
            n("pages"),
            n("received"),
            n("added"),
            n("updated"),
            n("moved_in"),
            n("removed"),
            if job["status"] == "running" {
                format!(" [{}]", p["phase"].as_str().unwrap_or("starting"))
            } else {
                String::new()
            }
        ),
        _ => {
            let mut parts: Vec<String> = p
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| *k != "devices")
                        .map(|(k, v)| format!("{} {k}", text(v)))
                        .collect()
                })
                .unwrap_or_default();
            parts.sort();
            format!(
                "assignment: {}",
                if parts.is_empty() {
                    "starting".into()
                } else {
                    parts.join(", ")
                }
            )
        }
    }
}

/// Writes a new file, refusing to overwrite an existing one (a public key file may already
/// be uploaded somewhere).
pub fn write_new_file(path: &Path, contents: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}
