//! `russet user …`: end users who sign in during Automated Device Enrollment, through the
//! admin API. Passwords are read from standard input (`--password-stdin`) or asked twice on
//! the terminal without echo (with `rpassword`); they never appear on the command line.

use std::io::{IsTerminal, Read};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::cli::{PasswordArgs, UserCommand};
use crate::client::Client;
use crate::output::{date, key_value_table, new_table, print_json, text};

/// The server refuses longer passwords; reading stops soon after.
const MAX_PASSWORD_INPUT: u64 = 4096;

pub async fn run(cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Create {
            username,
            display_name,
            email,
            password,
            client,
        } => {
            let password = read_password(&password, &format!("Password for {}: ", username.trim()))?;
            let c = Client::new(&client)?;
            let mut body = json!({ "username": username, "password": password });
            if let Some(d) = display_name {
                body["display_name"] = json!(d);
            }
            if let Some(e) = email {
                body["email"] = json!(e);
            }
            let user: Value = c.json(c.request(Method::POST, "/api/v1/users").json(&body)).await?;
            if client.json {
                return print_json(&user);
            }
            println!("User {} (\"{}\") created.", user["id"], text(&user["username"]));
            Ok(())
        }
        UserCommand::List { client } => {
            let c = Client::new(&client)?;
            let list: Value = c.json(c.request(Method::GET, "/api/v1/users")).await?;
            if client.json {
                return print_json(&list);
            }
            let mut table = new_table(&["id", "username", "display name", "email", "status", "last sign-in"]);
            for u in list["users"].as_array().into_iter().flatten() {
                table.add_row(vec![
                    text(&u["id"]),
                    text(&u["username"]),
                    text(&u["display_name"]),
                    text(&u["email"]),
                    status(u),
                    date(&u["last_sign_in_at"]),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        UserCommand::Show { user, client } => {
            let c = Client::new(&client)?;
            let u = find(&c, &user).await?;
            if client.json {
                return print_json(&u);
            }
            print_user(&u);
            Ok(())
        }
        UserCommand::Update {
            user,
            display_name,
            email,
            no_email,
            disable,
            enable,
            client,
        } => {
            let mut changes = Map::new();
            if let Some(d) = display_name {
                changes.insert("display_name".into(), json!(d));
            }
            if let Some(e) = email {
                changes.insert("email".into(), json!(e));
            }
            if no_email {
                changes.insert("email".into(), Value::Null);
            }
            if disable || enable {
                changes.insert("disabled".into(), json!(disable));
            }
            if changes.is_empty() {
                bail!("nothing to change: give --display-name, --email, --no-email, --disable or --enable");
            }
            let c = Client::new(&client)?;
            let id = find(&c, &user).await?["id"].clone();
            let u: Value = c
                .json(c.request(Method::PATCH, &format!("/api/v1/users/{id}")).json(&changes))
                .await?;
            if client.json {
                return print_json(&u);
            }
            print_user(&u);
            Ok(())
        }
        UserCommand::SetPassword { user, password, client } => {
            let c = Client::new(&client)?;
            let u = find(&c, &user).await?;
            let password = read_password(&password, &format!("New password for {}: ", text(&u["username"])))?;
            let u: Value = c
                .json(
                    c.request(Method::PUT, &format!("/api/v1/users/{}/password", u["id"]))
                        .json(&json!({ "password": password })),
                )
                .await?;
            if client.json {
                return print_json(&u);
            }
            println!(
                "New password set for {}; the account is {}.",
                text(&u["username"]),
                status(&u)
            );
            Ok(())
        }
        UserCommand::Unlock { user, client } => {
            let c = Client::new(&client)?;
            let u = find(&c, &user).await?;
            let u: Value = c
                .json(c.request(Method::POST, &format!("/api/v1/users/{}/unlock", u["id"])))
                .await?;
            if client.json {
                return print_json(&u);
            }
            println!("{} is unlocked; the account is {}.", text(&u["username"]), status(&u));
            Ok(())
        }
        UserCommand::Delete { user, client } => {
            let c = Client::new(&client)?;
            let u = find(&c, &user).await?;
            c.send(c.request(Method::DELETE, &format!("/api/v1/users/{}", u["id"])))
                .await?;
            if client.json {
                return print_json(&json!({ "deleted": u["id"] }));
            }
            println!("User {} (\"{}\") deleted.", u["id"], text(&u["username"]));
            Ok(())
        }
    }
}

/// A user by username (ignoring case) or, failing that, by id.
async fn find(c: &Client, user: &str) -> Result<Value> {
    let list: Value = c
        .json(
            c.request(Method::GET, "/api/v1/users")
                .query(&[("username", user.trim())]),
        )
        .await?;
    if let Some(u) = list["users"].as_array().and_then(|l| l.first()) {
        return Ok(u.clone());
    }
    match user.trim().parse::<i64>() {
        Ok(id) => c.json(c.request(Method::GET, &format!("/api/v1/users/{id}"))).await,
        Err(_) => bail!(
            "there is no user named \"{}\"; `russet user list` shows them",
            user.trim()
        ),
    }
}

fn status(u: &Value) -> String {
    match u["status"].as_str() {
        Some("locked") => format!("locked until {}", date(&u["locked_until"])),
        _ => text(&u["status"]),
    }
}

fn print_user(u: &Value) {
    let mut table = key_value_table();
    table.add_row(vec!["id".to_string(), text(&u["id"])]);
    table.add_row(vec!["username".to_string(), text(&u["username"])]);
    table.add_row(vec!["display name".to_string(), text(&u["display_name"])]);
    table.add_row(vec!["email".to_string(), text(&u["email"])]);
    table.add_row(vec!["source".to_string(), text(&u["source"])]);
    table.add_row(vec!["status".to_string(), status(u)]);
    table.add_row(vec!["failed sign-ins".to_string(), text(&u["failed_attempts"])]);
    table.add_row(vec!["last sign-in".to_string(), date(&u["last_sign_in_at"])]);
    table.add_row(vec!["created".to_string(), date(&u["created_at"])]);
    table.add_row(vec!["updated".to_string(), date(&u["updated_at"])]);
    println!("{table}");
}

/// The password from standard input, or asked twice on the terminal without echo.
fn read_password(args: &PasswordArgs, prompt: &str) -> Result<String> {
    if args.password_stdin {
        let mut input = String::new();
        std::io::stdin()
            .take(MAX_PASSWORD_INPUT)
            .read_to_string(&mut input)
            .context("cannot read the password from standard input (it must be UTF-8 text)")?;
        let password = input
            .strip_suffix('\n')
            .map(|p| p.strip_suffix('\r').unwrap_or(p))
            .unwrap_or(&input);
        if password.is_empty() {
            bail!("--password-stdin read no password from standard input");
        }
        return Ok(password.to_string());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password given: pass --password-stdin and write it to standard input, or run this in a terminal to be asked for it"
        );
    }
    let first = rpassword::prompt_password(prompt).context("cannot read the password from the terminal")?;
    let second =
        rpassword::prompt_password("Again, to confirm: ").context("cannot read the password from the terminal")?;
    if first != second {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}
