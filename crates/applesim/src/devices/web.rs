//! What Setup Assistant's web view does with the page behind an ADE profile's
//! `configuration_web_url`, reduced to what a simulated user needs: find the sign-in form,
//! fill it in, keep the cookies the server sets, and read the error a refused sign-in shows.
//!
//! The HTML reader is a small tolerant tag scanner, not a full HTML parser: it knows
//! comments, `<!…>`/`<?…>` declarations, raw-text `<script>`/`<style>`, quoted and unquoted
//! attributes, and the common character references. Untrusted pages cannot make it panic
//! (it only cuts the text at ASCII bytes, which are always character boundaries).

/// One tag of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    /// Lowercase tag name.
    pub name: String,
    /// `</name>`.
    pub closing: bool,
    /// Attributes (lowercase names, decoded values), in order.
    pub attrs: Vec<(String, String)>,
    /// Byte offset just after the tag's `>`.
    pub end: usize,
    /// Byte offset of the tag's `<`.
    pub start: usize,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn find_from(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| p + from)
}

/// Every tag of `html`, in order (text between them is skipped).
pub(crate) fn tags(html: &str) -> Vec<Tag> {
    let b = html.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&c| c == b'<').map(|p| p + i) {
        let start = p;
        i = p + 1;
        if b[i..].starts_with(b"!--") {
            i = find_from(b, i + 3, b"-->").map_or(b.len(), |e| e + 3);
            continue;
        }
        if matches!(b.get(i), Some(b'!' | b'?')) {
            i = b[i..].iter().position(|&c| c == b'>').map_or(b.len(), |e| i + e + 1);
            continue;
        }
        let closing = b.get(i) == Some(&b'/');
        if closing {
            i += 1;
        }
        let name_start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b':') {
            i += 1;
        }
        if i == name_start {
            // A lone `<` in text.
            continue;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() {
                break;
            }
            if b[i] == b'>' {
                i += 1;
                break;
            }
            let k0 = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
                i += 1;
            }
            let key = html[k0..i].to_ascii_lowercase();
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if b.get(i) == Some(&b'=') {
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                match b.get(i) {
                    Some(&q @ (b'"' | b'\'')) => {
                        let v0 = i + 1;
                        let v1 = b[v0..].iter().position(|&c| c == q).map_or(b.len(), |e| v0 + e);
                        value = decode_entities(&html[v0..v1]);
                        i = (v1 + 1).min(b.len());
                    }
                    _ => {
                        let v0 = i;
                        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                            i += 1;
                        }
                        value = decode_entities(&html[v0..i]);
                    }
                }
            }
            if !key.is_empty() {
                attrs.push((key, value));
            }
        }
        let raw_text = !closing && (name == "script" || name == "style");
        let end = i;
        out.push(Tag {
            name: name.clone(),
            closing,
            attrs,
            end,
            start,
        });
        if raw_text {
            let close = format!("</{name}");
            i = find_from(b, i, close.as_bytes()).unwrap_or(b.len());
        }
    }
    out
}

/// Decode the character references an attribute value or text may hold (`&amp;`, `&lt;`,
/// `&gt;`, `&quot;`, `&apos;`, `&nbsp;`, `&#NN;`, `&#xHH;`); others are kept as written.
pub(crate) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = rest.find(';').filter(|&e| e <= 12);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let num = name.strip_prefix('#')?;
                    let n = match num.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(n)
                }
            }?;
            Some((c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// An `<input>` of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormInput {
    /// `type`, lowercase (`text` when absent).
    pub kind: String,
    /// `name`.
    pub name: Option<String>,
    /// `value`.
    pub value: Option<String>,
}

/// A page's first `<form>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// `action` as written (`None`: the page's own URL).
    pub action: Option<String>,
    /// Its inputs, in document order.
    pub inputs: Vec<FormInput>,
}

/// The first `<form>` of `html` with the `<input>`s up to its `</form>`.
pub fn first_form(html: &str) -> Option<Form> {
    let all = tags(html);
    let open = all.iter().position(|t| t.name == "form" && !t.closing)?;
    let action = all[open].attr("action").map(str::to_owned);
    let inputs = all[open + 1..]
        .iter()
        .take_while(|t| !(t.name == "form" && t.closing))
        .filter(|t| t.name == "input" && !t.closing)
        .map(|t| FormInput {
            kind: t
                .attr("type")
                .map(|k| k.trim().to_ascii_lowercase())
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "text".to_owned()),
            name: t.attr("name").map(str::to_owned),
            value: t.attr("value").map(str::to_owned),
        })
        .collect();
    Some(Form { action, inputs })
}

impl Form {
    /// The fields a user signing in submits: every `hidden` input with its value, the
    /// username in the first `text` or `email` input, the password in the first `password`
    /// input (inputs without a name are not submitted; other inputs are left out).
    pub fn fill(&self, username: &str, password: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let (mut user_done, mut password_done) = (false, false);
        for i in &self.inputs {
            let Some(name) = &i.name else { continue };
            match i.kind.as_str() {
                "hidden" => out.push((name.clone(), i.value.clone().unwrap_or_default())),
                "text" | "email" if !user_done => {
                    user_done = true;
                    out.push((name.clone(), username.to_owned()));
                }
                "password" if !password_done => {
                    password_done = true;
                    out.push((name.clone(), password.to_owned()));
                }
                _ => {}
            }
        }
        out
    }
}

/// The text of the first element whose `class` has the token `error` (tags removed,
/// references decoded, white space collapsed); `None` when there is none or it is empty.
pub fn error_text(html: &str) -> Option<String> {
    let all = tags(html);
    let at = all.iter().position(|t| {
        !t.closing
            && t.attr("class")
                .is_some_and(|c| c.split_ascii_whitespace().any(|x| x == "error"))
    })?;
    let open = &all[at];
    let mut depth = 0usize;
    let mut end = html.len();
    for t in &all[at + 1..] {
        if t.name != open.name {
            continue;
        }
        if t.closing {
            if depth == 0 {
                end = t.start;
                break;
            }
            depth -= 1;
        } else {
            depth += 1;
        }
    }
    let inner = html.get(open.end..end).unwrap_or("");
    let text = plain_text(inner);
    (!text.is_empty()).then_some(text)
}

/// Text without tags, references decoded, white space collapsed.
pub(crate) fn plain_text(html: &str) -> String {
    let mut text = String::new();
    let mut at = 0;
    let mut raw = false;
    for t in tags(html) {
        if !raw && let Some(s) = html.get(at..t.start) {
            text.push_str(s);
            text.push(' ');
        }
        raw = !t.closing && (t.name == "script" || t.name == "style");
        at = t.end;
    }
    if let Some(s) = html.get(at..) {
        text.push_str(s);
    }
    decode_entities(&text)
        .split(|c: char| c.is_whitespace() || c == '\u{a0}')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The cookies one web view session keeps, per host (name → value; attributes other than
/// a `Max-Age` of 0 are ignored).
#[derive(Debug, Default, Clone)]
pub(crate) struct Cookies {
    jar: Vec<(String, String, String)>,
}

impl Cookies {
    /// Remember the `Set-Cookie` headers of an answer from `host`.
    pub fn store(&mut self, host: &str, headers: &reqwest::header::HeaderMap) {
        for v in headers.get_all(reqwest::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            if name.is_empty() {
                continue;
            }
            let expired = parts.any(|a| {
                a.split_once('=')
                    .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("max-age") && v.trim() == "0")
            });
            self.jar.retain(|(h, n, _)| !(h == host && *n == name));
            if !expired {
                self.jar.push((host.to_owned(), name, value));
            }
        }
    }

    /// The `Cookie` header for a request to `host`, if any.
    pub fn header(&self, host: &str) -> Option<String> {
        let v: Vec<String> = self
            .jar
            .iter()
            .filter(|(h, _, _)| h == host)
            .map(|(_, n, v)| format!("{n}={v}"))
            .collect();
        (!v.is_empty()).then(|| v.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html>
<html><head><title>Sign in</title>
<script>if (a < b && "</form>") { document.write("<form action='/evil'>"); }</script>
<style>.error{color:red}</style></head>
<body><!-- <form action="/commented"> -->
<p class="notice">Welcome</p>
<FORM method=post ACTION="/enroll/sign-in?x=1&amp;y=2">
  <input type="hidden" name="state" value="a&quot;b&#39;c&#x26;">
  <input type=hidden name=csrf value=t0k3n>
  <input name="user" placeholder="Name">
  <input type="email" name="email2">
  <input type="password" name="pw">
  <input type="password" name="pw2">
  <input type="checkbox" name="remember" value="1" checked>
  <input type="hidden" value="no name">
  <input type="submit" value="Sign in">
</FORM>
<form action="/second"><input type="hidden" name="other" value="x"></form>
</body></html>"#;

    #[test]
    fn finds_and_fills_the_first_form() {
        let f = first_form(PAGE).unwrap();
        assert_eq!(f.action.as_deref(), Some("/enroll/sign-in?x=1&y=2"));
        assert_eq!(f.inputs.len(), 9);
        assert_eq!(f.inputs[2].kind, "text", "type defaults to text");
        assert_eq!(
            f.fill("ava@example.com", "s3cret&=?"),
            vec![
                ("state".to_owned(), "a\"b'c&".to_owned()),
                ("csrf".to_owned(), "t0k3n".to_owned()),
                ("user".to_owned(), "ava@example.com".to_owned()),
                ("pw".to_owned(), "s3cret&=?".to_owned()),
            ]
        );
        assert!(first_form("<p>no form here</p>").is_none());
        let bare = first_form("<form><input type=password name=p></form>").unwrap();
        assert_eq!(bare.action, None);
        assert_eq!(bare.fill("u", "p"), vec![("p".to_owned(), "p".to_owned())]);
    }

    #[test]
    fn reads_the_error() {
        let page = r#"<div class="box"><div class="error big">Wrong <b>password</b>
            for &lt;ava&gt;.<div>Try&nbsp;again</div></div><p class="error">second</p></div>"#;
        assert_eq!(error_text(page).as_deref(), Some("Wrong password for <ava>. Try again"));
        assert_eq!(error_text(PAGE), None);
        assert_eq!(error_text("<span class=error></span>"), None);
        assert_eq!(error_text("<span class=error>unclosed"), Some("unclosed".to_owned()));
        assert_eq!(error_text("<p class='errors'>no</p>"), None, "the token, not a prefix");
        assert_eq!(plain_text("<p>a<script>x < y</script>b</p>"), "a b");
    }

    #[test]
    fn hostile_html_does_not_panic() {
        for s in [
            "<",
            "<<<>>>",
            "<form",
            "<form action=",
            "<form action=\"",
            "<input name='é",
            "<!--",
            "<!",
            "<script>",
            "&#xFFFFFFFF; &#99999999999; &; &amp",
            "<p class=error>é&",
            "<form><input type=password name=ü value=ö",
            "</",
            "<é>",
        ] {
            let _ = first_form(s).map(|f| f.fill("u", "p"));
            let _ = error_text(s);
            let _ = plain_text(s);
        }
        assert_eq!(decode_entities("&#xFFFFFFFF;&#65;&bogus;"), "&#xFFFFFFFF;A&bogus;");
    }

    #[test]
    fn cookies_per_host() {
        let mut h = reqwest::header::HeaderMap::new();
        h.append("set-cookie", "sid=abc; Path=/; HttpOnly".parse().unwrap());
        h.append("set-cookie", "csrf=1".parse().unwrap());
        let mut jar = Cookies::default();
        jar.store("mdm.example.com", &h);
        assert_eq!(jar.header("mdm.example.com").as_deref(), Some("sid=abc; csrf=1"));
        assert_eq!(jar.header("other.example.com"), None);
        let mut h = reqwest::header::HeaderMap::new();
        h.append("set-cookie", "sid=def".parse().unwrap());
        h.append("set-cookie", "csrf=; Max-Age=0".parse().unwrap());
        jar.store("mdm.example.com", &h);
        assert_eq!(jar.header("mdm.example.com").as_deref(), Some("sid=def"));
    }
}
