//! `russet device …`: devices ABM assigned to Russet's tokens.

use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use crate::ade_token::resolve;
use crate::cli::DeviceCommand;
use crate::client::Client;
use crate::output::{date, key_value_table, new_table, print_json, text};

pub async fn run(cmd: DeviceCommand) -> Result<()> {
    match cmd {
        DeviceCommand::List {
            token,
            profile,
            unassigned,
            profile_status,
            assign_state,
            serial_prefix,
            model,
            family,
            os,
            added_since,
            include_removed,
            limit,
            client,
        } => {
            let c = Client::new(&client)?;
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(t) = token {
                query.push(("token_id", resolve(&c, &t).await?.to_string()));
            }
            let opts = [
                ("profile_status", profile_status),
                ("assign_state", assign_state),
                ("serial_prefix", serial_prefix),
                ("model", model),
                ("family", family),
                ("os", os),
                ("added_since", added_since),
            ];
            for (k, v) in opts {
                if let Some(v) = v {
                    query.push((k, v));
                }
            }
            if let Some(p) = profile {
                query.push(("profile_id", p.to_string()));
            }
            if unassigned {
                query.push(("unassigned", "true".into()));
            }
            if include_removed {
                query.push(("include_removed", "true".into()));
            }
            let mut devices = Vec::new();
            let mut total = 0;
            let mut cursor: Option<String> = None;
            while (devices.len() as u32) < limit {
                let mut q = query.clone();
                q.push(("limit", (limit - devices.len() as u32).min(1000).to_string()));
                if let Some(cur) = &cursor {
                    q.push(("cursor", cur.clone()));
                }
                let page: Value = c.json(c.request(Method::GET, "/api/v1/devices").query(&q)).await?;
                total = page["total"].as_i64().unwrap_or(0);
                devices.extend(page["devices"].as_array().cloned().unwrap_or_default());
                cursor = page["next_cursor"].as_str().map(str::to_string);
                if cursor.is_none() {
                    break;
                }
            }
            if client.json {
                return print_json(&json!({ "devices": devices, "total": total, "next_cursor": cursor }));
            }
            let mut t = new_table(&[
                "SERIAL",
                "TOKEN",
                "MODEL",
                "OS",
                "ABM PROFILE",
                "PROFILE",
                "ASSIGNMENT",
                "ADDED",
                "REMOVED",
            ]);
            for d in &devices {
                t.add_row(vec![
                    text(&d["serial_number"]),
                    text(&d["token_id"]),
                    text(&d["model"]),
                    text(&d["os"]),
                    text(&d["abm"]["profile_status"]),
                    text(&d["assignment"]["profile_id"]),
                    text(&d["assignment"]["state"]),
                    date(&d["added_at"]),
                    date(&d["removed_at"]),
                ]);
            }
            println!("{t}");
            println!("{} of {total} matching devices shown.", devices.len());
            Ok(())
        }
        DeviceCommand::Show { serial, client } => {
            let c = Client::new(&client)?;
            let detail: Value = c
                .json(c.request(Method::GET, &format!("/api/v1/devices/{serial}")))
                .await?;
            if client.json {
                return print_json(&detail);
            }
            let d = &detail["device"];
            let mut t = key_value_table();
            for (label, v) in [
                ("serial number", text(&d["serial_number"])),
                ("token", text(&d["token_id"])),
                ("model", text(&d["model"])),
                ("description", text(&d["description"])),
                ("colour", text(&d["color"])),
                (
                    "OS / family",
                    format!("{} / {}", text(&d["os"]), text(&d["device_family"])),
                ),
                ("asset tag", text(&d["asset_tag"])),
                (
                    "assigned in ABM",
                    format!(
                        "{} by {}",
                        date(&d["abm"]["device_assigned_date"]),
                        text(&d["abm"]["device_assigned_by"])
                    ),
                ),
                (
                    "ABM profile",
                    format!(
                        "{} ({})",
                        text(&d["abm"]["profile_uuid"]),
                        text(&d["abm"]["profile_status"])
                    ),
                ),
                (
                    "last change in ABM",
                    format!("{} {}", text(&d["abm"]["last_op"]), date(&d["abm"]["last_op_date"])),
                ),
                ("profile in Russet", text(&d["assignment"]["profile_id"])),
                ("assignment", text(&d["assignment"]["state"])),
                ("retry at", date(&d["assignment"]["retry_at"])),
                ("first seen", date(&d["added_at"])),
                ("removed from ABM", date(&d["removed_at"])),
            ] {
                t.add_row(vec![label.to_string(), v]);
            }
            println!("{t}");
            let e = &detail["enrollment"];
            if e.is_null() {
                println!("\nNot enrolled in Russet's MDM.");
            } else {
                let mut m = key_value_table();
                for (label, v) in [
                    ("UDID", text(&e["udid"])),
                    ("name", text(&e["device_name"])),
                    ("OS", text(&e["os_version"])),
                    ("enabled", text(&e["enabled"])),
                    ("enrolled", date(&e["enrolled_at"])),
                    ("last check-in", date(&e["last_seen_at"])),
                    ("signed-in user", text(&e["ade"]["user"])),
                    ("in Setup Assistant", text(&e["awaiting_configuration"])),
                    ("stuck in setup", text(&e["setup_stuck"])),
                    ("pending commands", text(&e["pending_commands"])),
                ] {
                    m.add_row(vec![label.to_string(), v]);
                }
                println!("\nMDM enrollment:\n{m}");
            }
            let history = detail["assignment_history"].as_array().cloned().unwrap_or_default();
            if !history.is_empty() {
                let mut h = new_table(&["WHEN", "PROFILE", "RESULT", "RETRY AT"]);
                for e in &history {
                    h.add_row(vec![
                        date(&e["at"]),
                        text(&e["profile_name"]),
                        text(&e["result"]),
                        date(&e["retry_at"]),
                    ]);
                }
                println!("\nAssignment history:\n{h}");
            }
            Ok(())
        }
        DeviceCommand::Delete { serial, client } => {
            let c = Client::new(&client)?;
            let out: Value = c
                .json(c.request(Method::DELETE, &format!("/api/v1/devices/{serial}")))
                .await?;
            if client.json {
                return print_json(&out);
            }
            println!("{}", text(&out["notice"]));
            Ok(())
        }
    }
}
