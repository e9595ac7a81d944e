//! Reading plists as MDM messages: parsing a body (XML or binary) into a dictionary with
//! errors that say what the body looks like, and typed access to keys that names the key and
//! the expected type when a value is missing or of the wrong type.

use std::io::Cursor;

use plist::{Dictionary, Value};

use super::MdmError;

/// Apple's name (as in its schemas) of a plist value's type.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "<array>",
        Value::Dictionary(_) => "<dictionary>",
        Value::Boolean(_) => "<boolean>",
        Value::Data(_) => "<data>",
        Value::Date(_) => "<date>",
        Value::Real(_) => "<real>",
        Value::Integer(_) => "<integer>",
        Value::String(_) => "<string>",
        Value::Uid(_) => "<uid>",
        _ => "an unknown plist type",
    }
}

/// Parses an XML or binary plist.
pub(crate) fn parse_value(body: &[u8]) -> Result<Value, MdmError> {
    if body.is_empty() {
        return Err(MdmError::NotPlist {
            detail: "the body is empty".into(),
        });
    }
    if body.starts_with(b"bplist") {
        return Value::from_reader(Cursor::new(body)).map_err(|e| MdmError::NotPlist {
            detail: format!("damaged binary plist: {e}"),
        });
    }
    let text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let first = text.iter().copied().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'<') => Value::from_reader_xml(Cursor::new(body)).map_err(|e| MdmError::NotPlist {
            detail: format!("damaged XML plist: {e}"),
        }),
        Some(b'{') | Some(b'[') => Err(MdmError::NotPlist {
            detail: "it looks like JSON".into(),
        }),
        None => Err(MdmError::NotPlist {
            detail: "the body is only whitespace".into(),
        }),
        Some(_) => Err(MdmError::NotPlist {
            detail: "it starts with neither \"<\" (XML plist) nor \"bplist\" (binary plist)".into(),
        }),
    }
}

/// Parses an XML or binary plist whose top level must be a dictionary.
pub(crate) fn parse_dictionary(body: &[u8]) -> Result<Dictionary, MdmError> {
    match parse_value(body)? {
        Value::Dictionary(d) => Ok(d),
        other => Err(MdmError::NotDictionary {
            found: type_name(&other),
        }),
    }
}

/// Serialises a value as an XML plist.
pub(crate) fn to_xml(value: &Value) -> Result<Vec<u8>, MdmError> {
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, value).map_err(|e| MdmError::Internal {
        detail: format!("could not write the plist: {e}"),
    })?;
    Ok(out)
}

/// Typed, named access to the keys of one message's dictionary.
pub(crate) struct Fields<'a> {
    pub(crate) dict: &'a Dictionary,
    /// "the TokenUpdate message", "the command report", … (used in error messages).
    pub(crate) context: &'a str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(dict: &'a Dictionary, context: &'a str) -> Self {
        Fields { dict, context }
    }

    fn missing(&self, key: &str, expected: &'static str) -> MdmError {
        MdmError::MissingKey {
            context: self.context.to_owned(),
            key: key.to_owned(),
            expected,
        }
    }

    fn wrong(&self, key: &str, expected: &'static str, found: &Value) -> MdmError {
        MdmError::WrongType {
            context: self.context.to_owned(),
            key: key.to_owned(),
            expected,
            found: type_name(found),
        }
    }

    pub(crate) fn invalid(&self, key: &str, reason: impl Into<String>) -> MdmError {
        MdmError::InvalidValue {
            context: self.context.to_owned(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// A string, or None when absent.
    pub(crate) fn opt_string(&self, key: &str) -> Result<Option<String>, MdmError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong(key, "<string>", other)),
        }
    }

    /// A string, or None when absent or empty.
    pub(crate) fn opt_nonempty_string(&self, key: &str) -> Result<Option<String>, MdmError> {
        Ok(self.opt_string(key)?.filter(|s| !s.is_empty()))
    }

    /// A non-empty string.
    pub(crate) fn req_string(&self, key: &str) -> Result<String, MdmError> {
        match self.opt_string(key)? {
            None => Err(self.missing(key, "<string>")),
            Some(s) if s.is_empty() => Err(self.invalid(key, "is empty")),
            Some(s) => Ok(s),
        }
    }

    pub(crate) fn opt_data(&self, key: &str) -> Result<Option<Vec<u8>>, MdmError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Data(d)) => Ok(Some(d.clone())),
            Some(other) => Err(self.wrong(key, "<data>", other)),
        }
    }

    /// Non-empty data.
    pub(crate) fn req_data(&self, key: &str) -> Result<Vec<u8>, MdmError> {
        match self.opt_data(key)? {
            None => Err(self.missing(key, "<data>")),
            Some(d) if d.is_empty() => Err(self.invalid(key, "is empty")),
            Some(d) => Ok(d),
        }
    }

    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>, MdmError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(key, "<boolean>", other)),
        }
    }

    pub(crate) fn opt_integer(&self, key: &str) -> Result<Option<i64>, MdmError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => match i.as_signed() {
                Some(v) => Ok(Some(v)),
                None => Err(self.invalid(key, "is larger than a 64-bit signed integer")),
            },
            Some(other) => Err(self.wrong(key, "<integer>", other)),
        }
    }

    pub(crate) fn opt_dictionary(&self, key: &str) -> Result<Option<&'a Dictionary>, MdmError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Dictionary(d)) => Ok(Some(d)),
            Some(other) => Err(self.wrong(key, "<dictionary>", other)),
        }
    }

    pub(crate) fn opt_array(&self, key: &str) -> Result<Option<&'a [Value]>, MdmError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(other) => Err(self.wrong(key, "<array>", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_names_what_the_body_looks_like() {
        let e = parse_value(b"").unwrap_err();
        assert!(e.to_string().contains("the body is empty"), "{e}");
        let e = parse_value(b"  \n").unwrap_err();
        assert!(e.to_string().contains("only whitespace"), "{e}");
        let e = parse_value(br#"{"MessageType":"Authenticate"}"#).unwrap_err();
        assert!(e.to_string().contains("looks like JSON"), "{e}");
        let e = parse_value(b"MessageType=Authenticate").unwrap_err();
        assert!(e.to_string().contains("neither"), "{e}");
        let e = parse_value(b"bplist00garbage").unwrap_err();
        assert!(e.to_string().contains("damaged binary plist"), "{e}");
        let e = parse_value(b"<plist><dict><key>a</key></dict></plist>").unwrap_err();
        assert!(e.to_string().contains("damaged XML plist"), "{e}");
        assert_eq!(e.code(), "not_plist");
    }

    #[test]
    fn a_byte_order_mark_and_leading_whitespace_are_accepted() {
        let body = b"\xEF\xBB\xBF\n<plist version=\"1.0\"><dict><key>a</key><string>b</string></dict></plist>";
        let d = parse_dictionary(body).unwrap();
        assert_eq!(d.get("a").and_then(Value::as_string), Some("b"));
    }

    #[test]
    fn top_level_must_be_a_dictionary() {
        let e = parse_dictionary(b"<plist><array><string>x</string></array></plist>").unwrap_err();
        assert_eq!(e, MdmError::NotDictionary { found: "<array>" });
    }
}
