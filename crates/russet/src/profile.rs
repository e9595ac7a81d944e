//! `russet profile …`: ADE enrollment profiles through the admin API.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::ade_token::resolve;
use crate::cli::{ProfileCommand, ProfileFlags};
use crate::client::Client;
use crate::output::{date, follow_job, key_value_table, new_table, print_json, text};

/// The settings given as flags (and `--from-json`), as a JSON object.
fn settings_json(f: &ProfileFlags) -> Result<Map<String, Value>> {
    let mut m = match &f.from_json {
        Some(path) => {
            let raw = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            match serde_json::from_str::<Value>(&raw).with_context(|| format!("{} is not JSON", path.display()))? {
                Value::Object(o) => o,
                _ => bail!("{} must hold a JSON object of profile settings", path.display()),
            }
        }
        None => Map::new(),
    };
    let mut set = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    let strings = [
        ("name", &f.name),
        ("description", &f.description),
        ("pairing", &f.pairing),
        ("department", &f.department),
        ("department_phone", &f.department_phone),
        ("support_email", &f.support_email),
        ("org_magic", &f.org_magic),
        ("language", &f.language),
        ("region", &f.region),
        ("device_name_template", &f.device_name_template),
    ];
    for (k, v) in strings {
        if let Some(v) = v {
            set(k, json!(v));
        }
    }
    let bools = [
        ("user_affinity", f.user_affinity),
        ("supervised", f.supervised),
        ("locked_enrollment", f.locked_enrollment),
        ("await_device_configured", f.await_device_configured),
        ("auto_advance_setup", f.auto_advance_setup),
    ];
    for (k, v) in bools {
        if let Some(v) = v {
            set(k, json!(v));
        }
    }
    if let Some(skip) = &f.skip {
        set(
            "skip_setup_panes",
            json!(
                skip.iter()
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            ),
        );
    }
    for (k, files) in [
        ("pairing_certificates", &f.pairing_certificates),
        ("anchor_certificates", &f.anchor_certificates),
    ] {
        if !files.is_empty() {
            let mut pems = Vec::new();
            for file in files {
                pems.push(std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?);
            }
            set(k, json!(pems));
        }
    }
    if !f.install_profiles.is_empty() {
        let mut profiles = Vec::new();
        for file in &f.install_profiles {
            let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            profiles.push(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        set("install_profiles", json!(profiles));
    }
    Ok(m)
}

fn print_profile(p: &Value) {
    let s = &p["settings"];
    let mut t = key_value_table();
    let rows: Vec<(&str, String)> = vec![
        ("id", text(&p["id"])),
        ("name", text(&s["name"])),
        ("token", text(&p["token_id"])),
        ("default", text(&p["is_default"])),
        ("devices", text(&p["device_count"])),
        ("Apple profile", text(&p["apple_profile_uuid"])),
        ("defined at Apple", date(&p["defined_at"])),
        ("user affinity", text(&s["user_affinity"])),
        ("supervised", text(&s["supervised"])),
        ("locked enrollment", text(&s["locked_enrollment"])),
        (
            "installed in Setup Assistant",
            format!("{} profile(s)", s["install_profiles"].as_array().map_or(0, Vec::len)),
        ),
        ("await configuration", text(&s["await_device_configured"])),
        ("pairing", text(&s["pairing"])),
        ("department", text(&s["department"])),
        ("department phone", text(&s["department_phone"])),
        ("support email", text(&s["support_email"])),
        (
            "language / region",
            format!("{} / {}", text(&s["language"]), text(&s["region"])),
        ),
        (
            "skipped panes",
            s["skip_setup_panes"]
                .as_array()
                .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        ),
        ("device name template", text(&s["device_name_template"])),
        ("enrollment URL", text(&p["enroll_url"])),
        ("sign-in URL", text(&p["sign_in_url"])),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    println!("{t}");
}

pub async fn run(cmd: ProfileCommand) -> Result<()> {
    match cmd {
        ProfileCommand::Create {
            token,
            settings,
            client,
        } => {
            let c = Client::new(&client)?;
            let id = resolve(&c, &token).await?;
            let body = settings_json(&settings)?;
            if !body.contains_key("name") {
                bail!("a profile needs --name (the name Setup Assistant shows)");
            }
            let p: Value = c
                .json(
                    c.request(Method::POST, &format!("/api/v1/ade-tokens/{id}/profiles"))
                        .json(&body),
                )
                .await?;
            if client.json {
                return print_json(&p);
            }
            print_profile(&p);
            println!(
                "\nDefined at Apple. Assign it with: russet profile assign {} --filter unassigned",
                text(&p["id"])
            );
            Ok(())
        }
        ProfileCommand::Edit {
            profile,
            settings,
            client,
        } => {
            let c = Client::new(&client)?;
            let body = settings_json(&settings)?;
            if body.is_empty() {
                bail!("give the settings to change, e.g. --department IT");
            }
            let out: Value = c
                .json(
                    c.request(Method::PATCH, &format!("/api/v1/profiles/{profile}"))
                        .json(&body),
                )
                .await?;
            if client.json {
                return print_json(&out);
            }
            print_profile(&out["profile"]);
            println!("\n{}", text(&out["notice"]));
            Ok(())
        }
        ProfileCommand::Show { profile, client } => {
            let c = Client::new(&client)?;
            let p: Value = c
                .json(c.request(Method::GET, &format!("/api/v1/profiles/{profile}")))
                .await?;
            if client.json {
                return print_json(&p);
            }
            print_profile(&p);
            Ok(())
        }
        ProfileCommand::List { token, client } => {
            let c = Client::new(&client)?;
            let mut req = c.request(Method::GET, "/api/v1/profiles");
            if let Some(t) = token {
                req = req.query(&[("token_id", resolve(&c, &t).await?)]);
            }
            let list: Value = c.json(req).await?;
            if client.json {
                return print_json(&list);
            }
            let profiles = list["profiles"].as_array().cloned().unwrap_or_default();
            if profiles.is_empty() {
                println!("No profiles yet. Create one with: russet profile create --token TOKEN --name NAME");
                return Ok(());
            }
            let mut t = new_table(&[
                "ID",
                "TOKEN",
                "NAME",
                "DEFAULT",
                "DEVICES",
                "AFFINITY",
                "LOCKED",
                "APPLE PROFILE",
            ]);
            for p in &profiles {
                t.add_row(vec![
                    text(&p["id"]),
                    text(&p["token_id"]),
                    text(&p["settings"]["name"]),
                    if p["is_default"] == true {
                        "yes".into()
                    } else {
                        String::new()
                    },
                    text(&p["device_count"]),
                    text(&p["settings"]["user_affinity"]),
                    text(&p["settings"]["locked_enrollment"]),
                    text(&p["apple_profile_uuid"]),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        ProfileCommand::Delete { profile, client } => {
            let c = Client::new(&client)?;
            c.send(c.request(Method::DELETE, &format!("/api/v1/profiles/{profile}")))
                .await?;
            if client.json {
                return print_json(&json!({ "deleted": profile }));
            }
            println!("Deleted profile {profile}.");
            Ok(())
        }
        ProfileCommand::Assign {
            profile,
            serials,
            serials_file,
            filter,
            no_wait,
            client,
        } => {
            let c = Client::new(&client)?;
            let mut all: Vec<String> = serials
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if let Some(file) = serials_file {
                let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
                all.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string),
                );
            }
            let body = match (all.is_empty(), filter.as_deref()) {
                (false, None) => json!({ "serials": all }),
                (true, Some("unassigned")) => json!({ "filter": "unassigned" }),
                (true, Some("any")) => json!({ "filter": "any" }),
                (true, Some(f)) if f.starts_with("profile:") => {
                    json!({ "filter": "profile", "profile": &f["profile:".len()..] })
                }
                (true, Some(f)) => bail!("--filter must be unassigned, any or profile:NAME (got {f})"),
                (false, Some(_)) => bail!("give either serial numbers or --filter, not both"),
                (true, None) => bail!("give serial numbers (--serials, --serials-file) or --filter"),
            };
            let job: Value = c
                .json(
                    c.request(Method::POST, &format!("/api/v1/profiles/{profile}/assign"))
                        .json(&body),
                )
                .await?;
            let id = job["id"].as_i64().unwrap_or_default();
            if no_wait {
                if client.json {
                    return print_json(&job);
                }
                println!("Assignment started as job {id}.");
                return Ok(());
            }
            let done = follow_job(&c, id, client.json).await?;
            if client.json {
                return print_json(&done);
            }
            println!("{}", text(&done["message"]));
            Ok(())
        }
        ProfileCommand::SetDefault {
            token,
            profile,
            clear,
            client,
        } => {
            let c = Client::new(&client)?;
            let id = resolve(&c, &token).await?;
            if profile.is_none() && !clear {
                bail!("give the profile id, or --clear to have no default");
            }
            let t: Value = c
                .json(
                    c.request(Method::PUT, &format!("/api/v1/ade-tokens/{id}/default-profile"))
                        .json(&json!({ "profile_id": profile })),
                )
                .await?;
            if client.json {
                return print_json(&t);
            }
            match profile {
                Some(p) => println!(
                    "Profile {p} is now the default of token {}: newly synced devices get it.",
                    text(&t["name"])
                ),
                None => println!("Token {} has no default profile now.", text(&t["name"])),
            }
            Ok(())
        }
        ProfileCommand::Panes { client } => {
            let c = Client::new(&client)?;
            let list: Value = c.json(c.request(Method::GET, "/api/v1/setup-panes")).await?;
            if client.json {
                return print_json(&list);
            }
            let mut t = new_table(&["NAME", "APPLE KEY", "WHAT SKIPPING DOES", "DEPRECATED"]);
            for p in list["panes"].as_array().into_iter().flatten() {
                t.add_row(vec![
                    text(&p["name"]),
                    text(&p["key"]),
                    text(&p["title"]),
                    text(&p["deprecated"]),
                ]);
            }
            println!("{t}");
            Ok(())
        }
    }
}
