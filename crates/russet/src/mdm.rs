//! `russet enrollment-link …`, `russet command …`, `russet enrollment …`: enrolling devices
//! outside ABM, sending them MDM commands, and seeing them, through the admin API.

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{CommandCommand, EnrollmentCommand, EnrollmentLinkCommand};
use crate::client::Client;
use crate::output::{date, key_value_table, new_table, print_json, text};

/// Raw command plists are small; the server refuses more than 4 MiB.
const MAX_PLIST_FILE: u64 = 4 * 1024 * 1024;

pub async fn run_links(cmd: EnrollmentLinkCommand) -> Result<()> {
    match cmd {
        EnrollmentLinkCommand::Create {
            name,
            valid_days,
            single_use,
            client,
        } => {
            let c = Client::new(&client)?;
            let link: Value = c
                .json(c.request(Method::POST, "/api/v1/enrollment-links").json(&json!({
                    "name": name, "valid_days": valid_days, "single_use": single_use
                })))
                .await?;
            if client.json {
                return print_json(&link);
            }
            println!(
                "Enrollment link {} created (valid until {}).",
                link["id"],
                date(&link["expires_at"])
            );
            println!(
                "Open this URL on the device (it is shown only now):\n  {}",
                text(&link["url"])
            );
            Ok(())
        }
        EnrollmentLinkCommand::List { client } => {
            let c = Client::new(&client)?;
            let list: Value = c.json(c.request(Method::GET, "/api/v1/enrollment-links")).await?;
            if client.json {
                return print_json(&list);
            }
            let mut table = new_table(&[
                "id",
                "name",
                "status",
                "single use",
                "expires",
                "downloads",
                "enrollments",
            ]);
            for l in list["links"].as_array().into_iter().flatten() {
                table.add_row(vec![
                    text(&l["id"]),
                    text(&l["name"]),
                    text(&l["status"]),
                    text(&l["single_use"]),
                    date(&l["expires_at"]),
                    text(&l["downloads"]),
                    text(&l["enrollments"]),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        EnrollmentLinkCommand::Revoke { id, client } => {
            let c = Client::new(&client)?;
            let link: Value = c
                .json(c.request(Method::DELETE, &format!("/api/v1/enrollment-links/{id}")))
                .await?;
            if client.json {
                return print_json(&link);
            }
            println!("Enrollment link {id} (\"{}\") revoked.", text(&link["name"]));
            Ok(())
        }
    }
}

pub async fn run_commands(cmd: CommandCommand) -> Result<()> {
    match cmd {
        CommandCommand::Send {
            serials,
            udids,
            request_type,
            command_json: typed,
            plist,
            client,
        } => {
            if serials.is_empty() && udids.is_empty() {
                bail!("name the devices with --serial or --udid");
            }
            let mut body = json!({ "targets": { "serials": serials, "udids": udids } });
            match (request_type, typed, plist) {
                (Some(rt), None, None) => body["command"] = json!({ "request_type": rt }),
                (None, Some(j), None) => {
                    body["command"] = serde_json::from_str(&j).context("--command-json is not valid JSON")?;
                }
                (None, None, Some(path)) => {
                    use std::io::Read;
                    let f = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
                    let mut text = String::new();
                    f.take(MAX_PLIST_FILE + 1)
                        .read_to_string(&mut text)
                        .with_context(|| format!("cannot read {} as text (an XML plist)", path.display()))?;
                    if text.len() as u64 > MAX_PLIST_FILE {
                        bail!("{} is larger than 4 MiB", path.display());
                    }
                    body["raw_plist"] = json!(text);
                }
                _ => bail!("give the command with one of --request-type, --command-json or --plist"),
            }
            let c = Client::new(&client)?;
            let queued: Value = c.json(c.request(Method::POST, "/api/v1/commands").json(&body)).await?;
            if client.json {
                return print_json(&queued);
            }
            println!(
                "{} {} queued for {} device(s); they are being woken.",
                text(&queued["request_type"]),
                text(&queued["command_uuid"]),
                text(&queued["queued"])
            );
            if let Some(missing) = queued["not_enrolled"].as_array().filter(|m| !m.is_empty()) {
                let names: Vec<String> = missing.iter().map(text).collect();
                println!("Not enrolled (nothing queued): {}", names.join(", "));
            }
            println!("Follow it with: russet command show {}", text(&queued["command_uuid"]));
            Ok(())
        }
        CommandCommand::Show { uuid, client } => {
            let c = Client::new(&client)?;
            let status: Value = c
                .json(c.request(Method::GET, &format!("/api/v1/commands/{uuid}")))
                .await?;
            if client.json {
                return print_json(&status);
            }
            println!("{} {} — {}", text(&status["request_type"]), uuid, status["counts"]);
            let mut table = new_table(&["enrollment", "status", "sent", "answered", "NotNow", "error"]);
            for d in status["devices"].as_array().into_iter().flatten() {
                table.add_row(vec![
                    text(&d["enrollment_id"]),
                    text(&d["status"]),
                    date(&d["sent_at"]),
                    date(&d["answered_at"]),
                    text(&d["not_now_count"]),
                    if d["error_chain"].is_null() {
                        String::new()
                    } else {
                        d["error_chain"].to_string()
                    },
                ]);
            }
            println!("{table}");
            Ok(())
        }
    }
}

pub async fn run_enrollments(cmd: EnrollmentCommand) -> Result<()> {
    match cmd {
        EnrollmentCommand::List { serial, client } => {
            let c = Client::new(&client)?;
            let mut req = c
                .request(Method::GET, "/api/v1/enrollments")
                .query(&[("limit", "1000")]);
            if let Some(s) = &serial {
                req = req.query(&[("serial", s)]);
            }
            let list: Value = c.json(req).await?;
            if client.json {
                return print_json(&list);
            }
            let mut table = new_table(&["id", "serial", "name", "model", "OS", "enabled", "pending", "last seen"]);
            for e in list["enrollments"].as_array().into_iter().flatten() {
                table.add_row(vec![
                    text(&e["id"]),
                    text(&e["serial_number"]),
                    text(&e["device_name"]),
                    text(&e["model"]),
                    text(&e["os_version"]),
                    text(&e["enabled"]),
                    text(&e["pending_commands"]),
                    date(&e["last_seen_at"]),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        EnrollmentCommand::Release { id, client } => {
            let c = Client::new(&client)?;
            let e: Value = c
                .json(c.request(Method::POST, &format!("/api/v1/enrollments/{id}/release")))
                .await?;
            if client.json {
                return print_json(&e);
            }
            println!("DeviceConfigured queued for {id}; the device leaves Setup Assistant at its next check-in.");
            Ok(())
        }
        EnrollmentCommand::Show { id, client } => {
            let c = Client::new(&client)?;
            let e: Value = c
                .json(c.request(Method::GET, &format!("/api/v1/enrollments/{id}")))
                .await?;
            if client.json {
                return print_json(&e);
            }
            let mut table = key_value_table();
            for (k, label) in [
                ("id", "enrollment"),
                ("kind", "kind"),
                ("serial_number", "serial"),
                ("device_name", "name"),
                ("model", "model"),
                ("product_name", "product"),
                ("os_version", "OS"),
                ("build_version", "build"),
                ("enabled", "enabled"),
                ("pending_commands", "pending commands"),
                ("push_error", "push problem"),
                ("enrolled_at", "enrolled"),
                ("last_seen_at", "last seen"),
                ("last_push_at", "last push"),
                ("checked_out_at", "checked out"),
                ("awaiting_configuration", "in Setup Assistant"),
                ("configured_at", "configured"),
                ("configured_by", "released by"),
                ("setup_stuck", "stuck in setup"),
            ] {
                let v = &e[k];
                table.add_row(vec![
                    label.to_string(),
                    if k.ends_with("_at") { date(v) } else { text(v) },
                ]);
            }
            let ade = &e["ade"];
            if !ade.is_null() {
                for (k, label) in [
                    ("serial_number", "ADE device"),
                    ("token_id", "ADE token"),
                    ("profile_id", "ADE profile"),
                    ("user", "signed-in user"),
                    ("supervised", "supervised"),
                    ("locked_enrollment", "locked enrollment"),
                ] {
                    table.add_row(vec![label.to_string(), text(&ade[k])]);
                }
            }
            println!("{table}");
            if e["setup_stuck"] == true {
                println!(
                    "This device has waited in Setup Assistant for more than the configured time: look at its pending \
                     commands, or let it go on with `russet enrollment release {id}`."
                );
            }
            Ok(())
        }
    }
}
