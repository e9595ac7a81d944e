//! `russet push-cert …`: the MDM push certificate through the admin API.

use std::io::Read;

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::Value;

use crate::cli::PushCertCommand;
use crate::client::Client;
use crate::output::{date, key_value_table, print_json, text, write_new_file};

/// A push certificate is about 2 KB; the server refuses more than 64 KiB.
const MAX_CERTIFICATE_FILE: u64 = 64 * 1024;

pub async fn run(cmd: PushCertCommand) -> Result<()> {
    match cmd {
        PushCertCommand::Csr {
            out,
            request_out,
            pending,
            client,
        } => {
            let c = Client::new(&client)?;
            let method = if pending { Method::GET } else { Method::POST };
            let csr: Value = c.json(c.request(method, "/api/v1/push-cert/csr")).await?;
            if let Some(out) = &out {
                write_new_file(out, text(&csr["csr_pem"]).as_bytes())?;
            }
            let request = csr["signed_request"].as_str();
            match (&request_out, request) {
                (Some(path), Some(r)) => write_new_file(path, r.as_bytes())?,
                (Some(_), None) => bail!(
                    "no MDM vendor signing certificate is configured (mdm.vendor_certificate_file), so Russet cannot sign \
                     the request: the CSR {}is ready for your MDM vendor to sign",
                    if out.is_some() { "file " } else { "" }
                ),
                _ => {}
            }
            if client.json {
                return print_json(&csr);
            }
            match &out {
                Some(path) => println!("CSR saved to {}.", path.display()),
                None => print!("{}", text(&csr["csr_pem"])),
            }
            if let Some(path) = &request_out {
                println!("Signed request for Apple's portal saved to {}.", path.display());
            } else if request.is_some() {
                println!("A signed request for Apple's portal is ready: save it with --request-out FILE.");
            }
            println!("{}", text(&csr["instructions"]));
            Ok(())
        }
        PushCertCommand::Upload {
            file,
            apple_id,
            accept_topic_change,
            client,
        } => {
            let c = Client::new(&client)?;
            let f = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
            let mut bytes = Vec::new();
            f.take(MAX_CERTIFICATE_FILE + 1)
                .read_to_end(&mut bytes)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if bytes.len() as u64 > MAX_CERTIFICATE_FILE {
                bail!(
                    "{} is larger than 64 KiB; a push certificate is about 2 KB: pick the .pem Apple's push certificate \
                     portal issued",
                    file.display()
                );
            }
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(a) = &apple_id {
                query.push(("apple_id", a.clone()));
            }
            if accept_topic_change {
                query.push(("accept_topic_change", "true".into()));
            }
            let cert: Value = c
                .json(
                    c.request(Method::PUT, "/api/v1/push-cert")
                        .query(&query)
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(bytes),
                )
                .await?;
            if client.json {
                return print_json(&cert);
            }
            print_cert(&cert);
            Ok(())
        }
        PushCertCommand::Show { client } => {
            let c = Client::new(&client)?;
            let cert: Value = c.json(c.request(Method::GET, "/api/v1/push-cert")).await?;
            if client.json {
                return print_json(&cert);
            }
            print_cert(&cert);
            Ok(())
        }
    }
}

fn print_cert(v: &Value) {
    let mut table = key_value_table();
    for (k, label) in [
        ("status", "status"),
        ("topic", "topic"),
        ("apple_id", "Apple ID"),
        ("expires_at", "expires"),
        ("days_left", "days left"),
        ("serial", "serial"),
        ("subject", "subject"),
        ("uploaded_at", "uploaded"),
        ("renewed_at", "renewed"),
        ("csr_pending", "CSR waiting"),
        ("csr_created_at", "CSR made"),
    ] {
        let value = &v[k];
        let shown = if k.ends_with("_at") { date(value) } else { text(value) };
        table.add_row(vec![label.to_string(), shown]);
    }
    println!("{table}");
    println!("{}", text(&v["message"]));
}
