//! `russet ade-token …`: enrollment program tokens through the admin API, and the offline
//! `inspect`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use reqwest::Method;
use russet_apple::server_token::{self, EncryptedServerToken, MAX_FILE_SIZE};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::cli::{AdeTokenCommand, ClientArgs};
use crate::client::Client;
use crate::output::{date, follow_job, key_value_table, new_table, print_json, text, write_new_file};

pub async fn run(cmd: AdeTokenCommand) -> Result<()> {
    match cmd {
        AdeTokenCommand::Create { name, out, client } => {
            let c = Client::new(&client)?;
            let token: Value = c
                .json(
                    c.request(Method::POST, "/api/v1/ade-tokens")
                        .json(&json!({ "name": name })),
                )
                .await?;
            let id = token["id"].as_i64().unwrap_or_default();
            if let Some(out) = &out {
                let pem = c
                    .send(c.request(Method::GET, &format!("/api/v1/ade-tokens/{id}/public-key")))
                    .await?
                    .text()
                    .await?;
                write_new_file(out, pem.as_bytes())?;
            }
            if client.json {
                return print_json(&token);
            }
            print_token(&token);
            println!();
            match &out {
                Some(out) => println!("The public key for Apple Business Manager is in {}.", out.display()),
                None => println!(
                    "Save the public key for Apple Business Manager with: russet ade-token public-key {id} --out russet-public-key.pem"
                ),
            }
            println!(
                "Next: in Apple Business Manager open Preferences › Your MDM Servers, add (or edit) the MDM server, upload that \
                 public key, download the server token (.p7m), then run:\n  russet ade-token upload {id} --file TOKEN.p7m --apple-id YOU@EXAMPLE.COM"
            );
            Ok(())
        }
        AdeTokenCommand::PublicKey { token, out, client } => {
            let c = Client::new(&client)?;
            let id = resolve(&c, &token).await?;
            let pem = c
                .send(c.request(Method::GET, &format!("/api/v1/ade-tokens/{id}/public-key")))
                .await?
                .text()
                .await?;
            match out {
                Some(out) => {
                    write_new_file(&out, pem.as_bytes())?;
                    eprintln!(
                        "Wrote {}; upload it to the MDM server in Apple Business Manager.",
                        out.display()
                    );
                }
                None => print!("{pem}"),
            }
            Ok(())
        }
        AdeTokenCommand::Upload {
            token,
            file,
            apple_id,
            client,
        } => upload(&client, &token, &file, &apple_id, false, "initial").await,
        AdeTokenCommand::Renew {
            token,
            file,
            apple_id,
            force,
            client,
        } => upload(&client, &token, &file, &apple_id, force, "renewal").await,
        AdeTokenCommand::List { client } => {
            let c = Client::new(&client)?;
            let list: Value = c.json(c.request(Method::GET, "/api/v1/ade-tokens")).await?;
            if client.json {
                return print_json(&list);
            }
            let tokens = list["tokens"].as_array().cloned().unwrap_or_default();
            if tokens.is_empty() {
                println!(
                    "No enrollment program tokens yet. Create one with: russet ade-token create --name NAME --out public-key.pem"
                );
                return Ok(());
            }
            let mut table = new_table(&[
                "ID",
                "NAME",
                "STATUS",
                "APPLE ID",
                "EXPIRES",
                "DAYS LEFT",
                "DEVICES",
                "PROFILES",
            ]);
            for t in &tokens {
                table.add_row(vec![
                    t["id"].to_string(),
                    text(&t["name"]),
                    text(&t["status"]),
                    text(&t["apple_id"]),
                    date(&t["expires_at"]),
                    text(&t["days_left"]),
                    t["device_count"].to_string(),
                    t["profile_count"].to_string(),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        AdeTokenCommand::Show { token, client } => {
            let c = Client::new(&client)?;
            let id = resolve(&c, &token).await?;
            let t: Value = c
                .json(c.request(Method::GET, &format!("/api/v1/ade-tokens/{id}")))
                .await?;
            if client.json {
                return print_json(&t);
            }
            print_token(&t);
            Ok(())
        }
        AdeTokenCommand::Sync {
            token,
            full,
            no_wait,
            client,
        } => {
            let c = Client::new(&client)?;
            let id = resolve(&c, &token).await?;
            let job: Value = c
                .json(
                    c.request(Method::POST, &format!("/api/v1/ade-tokens/{id}/sync"))
                        .json(&json!({ "full": full })),
                )
                .await?;
            if let Some(note) = job["message"].as_str() {
                eprintln!("Note: {note}");
            }
            let job_id = job["id"].as_i64().unwrap_or_default();
            if no_wait {
                if client.json {
                    return print_json(&job);
                }
                println!("Sync started as job {job_id}.");
                return Ok(());
            }
            let done = follow_job(&c, job_id, client.json).await?;
            if client.json {
                return print_json(&done);
            }
            println!("{}", text(&done["message"]));
            Ok(())
        }
        AdeTokenCommand::Delete { token, client } => {
            let c = Client::new(&client)?;
            let id = resolve(&c, &token).await?;
            c.send(c.request(Method::DELETE, &format!("/api/v1/ade-tokens/{id}")))
                .await?;
            if client.json {
                return print_json(&json!({ "deleted": id }));
            }
            println!("Deleted token {id} and its key material.");
            Ok(())
        }
        AdeTokenCommand::Inspect {
            key,
            cert,
            file,
            show_secrets,
            json,
        } => inspect(&key, cert.as_deref(), &file, show_secrets, json),
    }
}

async fn upload(
    client: &ClientArgs,
    token: &str,
    file: &Path,
    apple_id: &str,
    force: bool,
    intent: &str,
) -> Result<()> {
    let c = Client::new(client)?;
    let id = resolve(&c, token).await?;
    let bytes = read_limited(file)?;
    let mut query = vec![("apple_id", apple_id.to_string()), ("intent", intent.to_string())];
    if force {
        query.push(("force", "true".to_string()));
    }
    let outcome: Value = c
        .json(
            c.request(Method::PUT, &format!("/api/v1/ade-tokens/{id}/server-token"))
                .query(&query)
                .header(reqwest::header::CONTENT_TYPE, "application/pkcs7-mime")
                .body(bytes),
        )
        .await?;
    if client.json {
        return print_json(&outcome);
    }
    let t = &outcome["token"];
    match outcome["result"].as_str().unwrap_or("") {
        "activated" => println!("Token {} is active until {}.", text(&t["name"]), date(&t["expires_at"])),
        "renewed" => println!(
            "Token {} renewed in place: it now expires {} (was {}).",
            text(&t["name"]),
            date(&t["expires_at"]),
            date(&outcome["previous_expires_at"])
        ),
        "apple_id_updated" => println!(
            "Token {} already had this server token; its Apple ID is now {}.",
            text(&t["name"]),
            text(&t["apple_id"])
        ),
        "unchanged" => println!(
            "Token {} already has this exact server token; nothing changed.",
            text(&t["name"])
        ),
        other => println!("Upload result: {other}"),
    }
    if outcome["forced"].as_bool() == Some(true) {
        println!("Note: --force overrode a safety check; see `russet ade-token show {id}`.");
    }
    if outcome["apple_id_changed"].as_bool() == Some(true) {
        println!(
            "The Apple ID changed to {}; renew with it next time.",
            text(&t["apple_id"])
        );
    }
    Ok(())
}

/// A token id, or the id of the token with that name.
pub async fn resolve(c: &Client, token: &str) -> Result<i64> {
    if let Ok(id) = token.trim().parse::<i64>() {
        return Ok(id);
    }
    let list: Value = c.json(c.request(Method::GET, "/api/v1/ade-tokens")).await?;
    let wanted = token.trim().to_lowercase();
    list["tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"].as_str().map(|n| n.trim().to_lowercase()) == Some(wanted.clone()))
        .and_then(|t| t["id"].as_i64())
        .with_context(|| format!("there is no token named \"{token}\"; `russet ade-token list` shows them"))
}

/// Reads a server token file, refusing anything over the 1 MiB the server accepts
/// without reading it all.
fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > MAX_FILE_SIZE {
        bail!(
            "{} is larger than 1 MiB; an ABM server token is a few kilobytes: check that you picked the .p7m downloaded from Apple Business Manager",
            path.display()
        );
    }
    Ok(bytes)
}

fn inspect(key: &Path, cert: Option<&Path>, file: &Path, show_secrets: bool, as_json: bool) -> Result<()> {
    let key_pem = std::fs::read_to_string(key).with_context(|| format!("cannot read the key {}", key.display()))?;
    let bytes = read_limited(file)?;
    let envelope = EncryptedServerToken::parse(&bytes)?;
    let token = match cert {
        Some(cert) => {
            let cert_pem = std::fs::read_to_string(cert)
                .with_context(|| format!("cannot read the certificate {}", cert.display()))?;
            let (pkey, x509) = server_token::load_key_pair(&key_pem, &cert_pem)?;
            envelope.decrypt(&pkey, &x509)?
        }
        None => {
            let pkey = server_token::load_private_key(&key_pem)?;
            envelope.decrypt_with_key(&pkey)?
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let expiry = russet_core::fmt_time(token.access_token_expiry);
    let days = russet_core::days_left(now, token.access_token_expiry);
    let recipients: Vec<String> = envelope
        .recipients()
        .iter()
        .map(|r| format!("{} serial {}", r.issuer, r.serial))
        .collect();
    let mut out = json!({
        "file_format": envelope.format().as_str(),
        "cipher": envelope.content_cipher().name(),
        "encrypted_for": recipients,
        "consumer_key": token.consumer_key,
        "consumer_key_fingerprint": russet_core::ade_tokens::consumer_key_fingerprint(&token.consumer_key),
        "access_token_expiry": expiry,
        "expired": days < 0,
        "days_left": days,
    });
    if show_secrets {
        out["consumer_secret"] = json!(token.consumer_secret.expose_secret());
        out["access_token"] = json!(token.access_token.expose_secret());
        out["access_secret"] = json!(token.access_secret.expose_secret());
    }
    if as_json {
        return print_json(&out);
    }
    let mut table = key_value_table();
    for (k, label) in [
        ("file_format", "file format"),
        ("cipher", "cipher"),
        ("consumer_key", "consumer key"),
        ("consumer_key_fingerprint", "consumer key fingerprint"),
        ("access_token_expiry", "expires"),
        ("days_left", "days left"),
        ("consumer_secret", "consumer secret"),
        ("access_token", "access token"),
        ("access_secret", "access secret"),
    ] {
        if !out[k].is_null() {
            table.add_row(vec![label.to_string(), text(&out[k])]);
        }
    }
    table.add_row(vec!["encrypted for".to_string(), recipients.join("\n")]);
    println!("{table}");
    if days < 0 {
        println!("This server token has EXPIRED; download a new one from Apple Business Manager.");
    }
    if !show_secrets {
        println!("(OAuth secrets hidden; --show-secrets prints them)");
    }
    Ok(())
}

fn print_token(t: &Value) {
    let mut table = key_value_table();
    for (k, label) in [
        ("id", "id"),
        ("name", "name"),
        ("status", "status"),
        ("apple_id", "Apple ID"),
        ("expires_at", "expires"),
        ("days_left", "days left"),
        ("consumer_key_fingerprint", "consumer key fingerprint"),
        ("certificate_serial", "certificate serial"),
        ("device_count", "devices"),
        ("removed_device_count", "removed devices"),
        ("profile_count", "profiles"),
        ("default_profile_id", "default profile"),
        ("created_at", "created"),
        ("activated_at", "activated"),
        ("renewed_at", "renewed"),
    ] {
        let v = &t[k];
        let shown = if k.ends_with("_at") { date(v) } else { text(v) };
        table.add_row(vec![label.to_string(), shown]);
    }
    for (k, label) in [
        ("server_name", "ABM MDM server"),
        ("org_name", "organisation"),
        ("org_type", "organisation type"),
        ("admin_id", "ABM administrator"),
    ] {
        table.add_row(vec![label.to_string(), text(&t["abm"][k])]);
    }
    for (k, label) in [
        ("last_sync_at", "last sync"),
        ("last_result", "last sync result"),
        ("next_sync_at", "next sync"),
    ] {
        let v = &t["sync"][k];
        table.add_row(vec![
            label.to_string(),
            if k.ends_with("_at") { date(v) } else { text(v) },
        ]);
    }
    if !t["sync"]["last_error"].is_null() {
        table.add_row(vec!["last sync error".to_string(), text(&t["sync"]["last_error"])]);
    }
    println!("{table}");
    if let Some(m) = t["status_message"].as_str() {
        println!("\n{m}");
    }
}
