//! `russet vpp-token …` and `russet status`: Apps and Books tokens and the health of every
//! Apple credential, through the admin API.

use std::io::Read;

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::Value;

use crate::cli::{StatusArgs, VppFileArgs, VppTokenCommand};
use crate::client::Client;
use crate::output::{date, key_value_table, new_table, print_json, text};

/// A .vpptoken is under 1 KB; the server refuses more than 16 KiB.
const MAX_VPP_FILE: u64 = 16 * 1024;

/// Exit status of `russet status`, carried up to `main` as an error.
#[derive(Debug)]
pub struct StatusExit(pub u8);

impl std::fmt::Display for StatusExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for StatusExit {}

fn read_file(args: &VppFileArgs) -> Result<Vec<u8>> {
    let f = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_VPP_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    if bytes.len() as u64 > MAX_VPP_FILE {
        bail!(
            "{} is larger than 16 KiB; a .vpptoken is under 1 KB: pick the file Apple Business Manager downloaded \
             (Preferences › Payments and Billing › Apps and Books)",
            args.file.display()
        );
    }
    Ok(bytes)
}

fn file_query(args: &VppFileArgs) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(a) = &args.apple_id {
        q.push(("apple_id", a.clone()));
    }
    if args.take_over {
        q.push(("take_over", "true".to_string()));
    }
    q
}

pub async fn run(cmd: VppTokenCommand) -> Result<()> {
    match cmd {
        VppTokenCommand::Upload {
            file,
            name,
            account_type,
            client,
        } => {
            let c = Client::new(&client)?;
            let bytes = read_file(&file)?;
            let mut query = file_query(&file);
            if let Some(n) = name {
                query.push(("name", n));
            }
            query.push(("account_type", account_type));
            let out: Value = c
                .json(
                    c.request(Method::POST, "/api/v1/vpp-tokens")
                        .query(&query)
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(bytes),
                )
                .await?;
            print_outcome(&out, client.json)
        }
        VppTokenCommand::Renew { id, file, client } => {
            let c = Client::new(&client)?;
            let bytes = read_file(&file)?;
            let out: Value = c
                .json(
                    c.request(Method::PUT, &format!("/api/v1/vpp-tokens/{id}/token"))
                        .query(&file_query(&file))
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(bytes),
                )
                .await?;
            print_outcome(&out, client.json)
        }
        VppTokenCommand::List { client } => {
            let c = Client::new(&client)?;
            let list: Value = c.json(c.request(Method::GET, "/api/v1/vpp-tokens")).await?;
            if client.json {
                return print_json(&list);
            }
            let mut table = new_table(&[
                "ID",
                "NAME",
                "LOCATION",
                "STATUS",
                "EXPIRES",
                "DAYS",
                "APPS",
                "LICENCES",
                "LAST SYNC",
                "OWNER",
            ]);
            let empty = Vec::new();
            let tokens = list["tokens"].as_array().unwrap_or(&empty);
            for t in tokens {
                table.add_row(vec![
                    text(&t["id"]),
                    text(&t["name"]),
                    text(&t["location_name"]),
                    text(&t["status"]),
                    date(&t["expires_at"]),
                    text(&t["days_left"]),
                    text(&t["app_count"]),
                    format!("{}/{}", text(&t["licences_assigned"]), text(&t["licences_total"])),
                    format!(
                        "{} {}",
                        date(&t["sync"]["last_sync_at"]),
                        text(&t["sync"]["last_result"])
                    ),
                    owner(&t["owner"]),
                ]);
            }
            if tokens.is_empty() {
                println!(
                    "No Apps and Books tokens yet: add one with `russet vpp-token upload --file <file.vpptoken>`."
                );
            } else {
                println!("{table}");
            }
            Ok(())
        }
        VppTokenCommand::Show { id, client } => {
            let c = Client::new(&client)?;
            let t: Value = c
                .json(c.request(Method::GET, &format!("/api/v1/vpp-tokens/{id}")))
                .await?;
            if client.json {
                return print_json(&t);
            }
            print_token(&t);
            Ok(())
        }
        VppTokenCommand::Sync { id, client } => {
            let c = Client::new(&client)?;
            let t: Value = c
                .json(c.request(Method::POST, &format!("/api/v1/vpp-tokens/{id}/sync")))
                .await?;
            if client.json {
                return print_json(&t);
            }
            println!(
                "Synced: {} apps and books, {} of {} licences assigned.",
                text(&t["app_count"]),
                text(&t["licences_assigned"]),
                text(&t["licences_total"])
            );
            print_token(&t);
            Ok(())
        }
        VppTokenCommand::Delete { id, confirm, client } => {
            let c = Client::new(&client)?;
            let out: Value = c
                .json(
                    c.request(Method::DELETE, &format!("/api/v1/vpp-tokens/{id}"))
                        .query(&[("confirm", if confirm { "true" } else { "false" })]),
                )
                .await?;
            if client.json {
                return print_json(&out);
            }
            println!("Deleted. {}", text(&out["message"]));
            Ok(())
        }
        VppTokenCommand::Apps { token, client } => {
            let c = Client::new(&client)?;
            let mut req = c.request(Method::GET, "/api/v1/vpp-assets");
            if let Some(t) = token {
                req = req.query(&[("token_id", t)]);
            }
            let list: Value = c.json(req).await?;
            if client.json {
                return print_json(&list);
            }
            let mut table = new_table(&[
                "ADAM ID",
                "TYPE",
                "PLATFORMS",
                "ASSIGNED",
                "AVAILABLE",
                "TOTAL",
                "TOKENS",
            ]);
            let empty = Vec::new();
            for a in list["assets"].as_array().unwrap_or(&empty) {
                let platforms: Vec<String> = a["platforms"].as_array().unwrap_or(&empty).iter().map(text).collect();
                let tokens: Vec<String> = a["licences"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|l| {
                        format!(
                            "{} ({} {})",
                            text(&l["token_name"]),
                            text(&l["total"]),
                            text(&l["pricing"])
                        )
                    })
                    .collect();
                table.add_row(vec![
                    text(&a["adam_id"]),
                    text(&a["product_type"]),
                    platforms.join(","),
                    text(&a["assigned"]),
                    text(&a["available"]),
                    text(&a["total"]),
                    tokens.join("; "),
                ]);
            }
            println!("{table}");
            Ok(())
        }
    }
}

fn owner(o: &Value) -> String {
    if o["is_russet"].as_bool() == Some(true) {
        "Russet".into()
    } else if o["name"].is_null() {
        "-".into()
    } else {
        format!("other: {}", text(&o["name"]))
    }
}

fn print_outcome(out: &Value, json: bool) -> Result<()> {
    if json {
        return print_json(out);
    }
    match out["result"].as_str() {
        Some("created") => println!("Added token {}.", text(&out["token"]["id"])),
        Some("renewed") => println!(
            "Renewed in place: expiry {} → {}.",
            date(&out["previous_expires_at"]),
            date(&out["token"]["expires_at"])
        ),
        Some(other) => println!("Result: {other}."),
        None => {}
    }
    let empty = Vec::new();
    for w in out["warnings"].as_array().unwrap_or(&empty) {
        println!("warning: {}", text(w));
    }
    print_token(&out["token"]);
    Ok(())
}

fn print_token(t: &Value) {
    let mut table = key_value_table();
    let rows = [
        ("id", text(&t["id"])),
        ("name", text(&t["name"])),
        ("status", text(&t["status"])),
        (
            "location",
            format!("{} ({})", text(&t["location_name"]), text(&t["location_id"])),
        ),
        ("organisation", text(&t["org_name"])),
        ("account type", text(&t["account_type"])),
        ("country", text(&t["country"])),
        ("Apple ID", text(&t["apple_id"])),
        ("expires", date(&t["expires_at"])),
        ("days left", text(&t["days_left"])),
        ("managed by", owner(&t["owner"])),
        ("apps and books", text(&t["app_count"])),
        (
            "licences",
            format!(
                "{} assigned of {}",
                text(&t["licences_assigned"]),
                text(&t["licences_total"])
            ),
        ),
        (
            "last sync",
            format!(
                "{} {}",
                date(&t["sync"]["last_sync_at"]),
                text(&t["sync"]["last_result"])
            ),
        ),
        ("last error", text(&t["sync"]["last_error"])),
        ("next sync", date(&t["sync"]["next_sync_at"])),
        ("renewed", date(&t["renewed_at"])),
    ];
    for (k, v) in rows {
        table.add_row(vec![k.to_string(), v]);
    }
    println!("{table}");
    println!("{}", text(&t["status_message"]));
}

/// `russet status`.
pub async fn status(args: StatusArgs) -> Result<()> {
    let report: Value = match Client::new(&args.client) {
        Ok(c) => match c.json(c.request(Method::GET, "/api/v1/health/credentials")).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot read the credentials' health: {e:#}");
                return Err(StatusExit(3).into());
            }
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            return Err(StatusExit(3).into());
        }
    };
    if args.client.json {
        print_json(&report)?;
    } else {
        let mut table = new_table(&["KIND", "NAME", "APPLE ID", "EXPIRES", "DAYS", "STATUS", "WHAT TO DO"]);
        let empty = Vec::new();
        let creds = report["credentials"].as_array().unwrap_or(&empty);
        for c in creds {
            table.add_row(vec![
                text(&c["kind"]),
                text(&c["name"]),
                text(&c["apple_id"]),
                date(&c["expires_at"]),
                text(&c["days_left"]),
                text(&c["status"]),
                text(&c["message"]),
            ]);
        }
        if creds.is_empty() {
            println!("No Apple credentials yet (no ADE token, push certificate or Apps and Books token).");
        } else {
            println!("{table}");
        }
        println!("Overall: {}", text(&report["severity"]));
        if args.notifications {
            let c = Client::new(&args.client)?;
            let list: Value = c
                .json(
                    c.request(Method::GET, "/api/v1/health/notifications")
                        .query(&[("limit", 20)]),
                )
                .await?;
            let mut table = new_table(&["WHEN", "EVENT", "CREDENTIAL", "DELIVERY", "ATTEMPTS", "LAST ERROR"]);
            for n in list["notifications"].as_array().unwrap_or(&empty) {
                table.add_row(vec![
                    date(&n["created_at"]),
                    text(&n["event"]),
                    text(&n["credential"]),
                    text(&n["status"]),
                    text(&n["attempts"]),
                    text(&n["last_error"]),
                ]);
            }
            println!("\nNotifications:\n{table}");
        }
    }
    let code = match (report["severity"].as_str(), args.fail_on.as_str()) {
        (Some("critical" | "failed"), _) => 2,
        (Some("warning"), "warning") => 1,
        _ => 0,
    };
    if code != 0 {
        return Err(StatusExit(code).into());
    }
    Ok(())
}
