//! Distinguished names as text, for messages: RFC 4514 style ("CN=…, O=…", most specific
//! attribute first), escaped, with control characters replaced and the length bounded.

use openssl::x509::X509NameRef;

/// The longest issuer text shown; a hostile name could otherwise be most of a megabyte.
const MAX_NAME_DISPLAY: usize = 256;

/// Formats a Name like RFC 4514 ("CN=…, O=…": most specific attribute first), escaping
/// special characters and replacing control characters.
pub(crate) fn display_name(name: &X509NameRef) -> String {
    let mut parts: Vec<String> = Vec::new();
    for entry in name.entries() {
        let object = entry.object();
        let key = match object.nid().short_name() {
            Ok(short) => short.to_owned(),
            Err(_) => object.to_string(),
        };
        let value = match entry.data().to_string() {
            Ok(s) => escape_value(&s),
            Err(_) => format!("#{}", hex::encode_upper(entry.data().as_slice())),
        };
        parts.push(format!("{key}={value}"));
    }
    parts.reverse();
    let mut text = parts.join(", ");
    if text.chars().count() > MAX_NAME_DISPLAY {
        text = text.chars().take(MAX_NAME_DISPLAY).collect();
        text.push('…');
    }
    text
}

fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' | ' ' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4514_escaping() {
        assert_eq!(escape_value("a,b"), "a\\,b");
        assert_eq!(escape_value(" x "), "\\ x\\ ");
        assert_eq!(escape_value("#1"), "\\#1");
        assert_eq!(escape_value("a\nb"), "a\\0Ab");
    }
}
