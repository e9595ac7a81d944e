//! Reading plists as MDM messages: parsing a body (XML or binary) into a dictionary with
//! errors that say what the body looks like, and typed access to keys that names the key and
//! the expected type when a value is missing or of the wrong type.
//!
//! Before the plist crate builds a value, the body's shape is bounded: building and dropping a
//! value recurse once per level of nesting, so a body of a megabyte of nested `<array>`s
//! would overflow the stack and abort the process, and a binary plist can make an object
//! refer to another twice at every level ("billion laughs"), which the crate would expand in
//! full. [`MAX_DEPTH`] levels and a number of values proportional to the body are allowed,
//! far beyond any MDM message.

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

/// The deepest nesting of arrays and dictionaries accepted (MDM messages use fewer than ten).
pub const MAX_DEPTH: usize = 100;

/// Parses an XML or binary plist.
pub(crate) fn parse_value(body: &[u8]) -> Result<Value, MdmError> {
    if body.is_empty() {
        return Err(MdmError::NotPlist {
            detail: "the body is empty".into(),
        });
    }
    if body.starts_with(b"bplist") {
        check_binary_shape(body)?;
        return Value::from_reader(Cursor::new(body)).map_err(|e| MdmError::NotPlist {
            detail: format!("damaged binary plist: {e}"),
        });
    }
    let text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let first = text.iter().copied().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'<') => {
            check_xml_depth(body)?;
            Value::from_reader_xml(Cursor::new(body)).map_err(|e| MdmError::NotPlist {
                detail: format!("damaged XML plist: {e}"),
            })
        }
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

fn too_deep() -> MdmError {
    MdmError::TooComplex {
        detail: format!("nests arrays and dictionaries more than {MAX_DEPTH} levels deep"),
    }
}

/// Bounds the nesting of an XML plist by counting `<array>` and `<dict>` tags. Tags inside
/// comments or CDATA count too, so the estimate can only be too high, never too low.
fn check_xml_depth(body: &[u8]) -> Result<(), MdmError> {
    let ends_name = |b: Option<&u8>| matches!(b, Some(b'>' | b'/' | b' ' | b'\t' | b'\r' | b'\n'));
    let mut depth = 0usize;
    for (pos, _) in body.iter().enumerate().filter(|(_, b)| **b == b'<') {
        let rest = &body[pos + 1..];
        let (closing, name) = match rest.strip_prefix(b"/") {
            Some(name) => (true, name),
            None => (false, rest),
        };
        let container = (name.starts_with(b"array") && ends_name(name.get(5)))
            || (name.starts_with(b"dict") && ends_name(name.get(4)));
        if !container {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
            continue;
        }
        let self_closing = rest
            .iter()
            .position(|b| *b == b'>')
            .is_some_and(|end| end > 0 && rest[end - 1] == b'/');
        if !self_closing {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(too_deep());
            }
        }
    }
    Ok(())
}

/// Bounds a binary plist before it is expanded: the nesting of its containers and the number
/// of values it expands to (objects shared by several containers count each time). Walks the
/// object table iteratively, each object once.
fn check_binary_shape(body: &[u8]) -> Result<(), MdmError> {
    let damaged = |what: &str| MdmError::NotPlist {
        detail: format!("damaged binary plist: {what}"),
    };
    // Big-endian unsigned integer of 1 to 8 bytes.
    let be = |bytes: &[u8]| bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if body.len() < 8 + 32 {
        return Err(damaged("shorter than its header and trailer"));
    }
    let trailer_start = body.len() - 32;
    let trailer = &body[trailer_start..];
    let offset_size = usize::from(trailer[6]);
    let ref_size = usize::from(trailer[7]);
    if !matches!(offset_size, 1..=4 | 8) || !matches!(ref_size, 1 | 2 | 4 | 8) {
        return Err(damaged("invalid integer sizes in the trailer"));
    }
    let to_usize = |v: u64| usize::try_from(v).ok();
    let (Some(count), Some(root), Some(table)) = (
        to_usize(be(&trailer[8..16])),
        to_usize(be(&trailer[16..24])),
        to_usize(be(&trailer[24..32])),
    ) else {
        return Err(damaged("the trailer's numbers are too large"));
    };
    let table_end = count.checked_mul(offset_size).and_then(|n| n.checked_add(table));
    if table_end.is_none_or(|end| end > trailer_start) || root >= count {
        return Err(damaged("the object table does not fit in the file"));
    }
    // (first reference, number of references) of a container; None for other objects.
    let children = |object: usize| -> Result<Option<(usize, usize)>, MdmError> {
        let at = table + object * offset_size;
        let offset = to_usize(be(&body[at..at + offset_size])).filter(|o| *o < trailer_start);
        let Some(offset) = offset else {
            return Err(damaged("an object lies outside the file"));
        };
        let marker = body[offset];
        let (kind, low) = (marker >> 4, marker & 0x0f);
        if !matches!(kind, 0xA | 0xC | 0xD) {
            return Ok(None);
        }
        let (len, header) = if low == 0x0f {
            let size_marker = body.get(offset + 1).copied().unwrap_or(0);
            let width = 1usize << (size_marker & 0x03);
            let bytes = body
                .get(offset + 2..offset + 2 + width)
                .ok_or_else(|| damaged("a container's length lies outside the file"))?;
            (to_usize(be(bytes)), 2 + width)
        } else {
            (Some(usize::from(low)), 1)
        };
        let refs = len.and_then(|n| if kind == 0xD { n.checked_mul(2) } else { Some(n) });
        let start = offset + header;
        let fits = refs
            .and_then(|r| r.checked_mul(ref_size))
            .and_then(|n| n.checked_add(start))
            .is_some_and(|end| end <= trailer_start);
        match refs {
            Some(refs) if fits => Ok(Some((start, refs))),
            _ => Err(damaged("a container's references lie outside the file")),
        }
    };
    let reference = |start: usize, index: usize| -> Result<usize, MdmError> {
        let at = start + index * ref_size;
        to_usize(be(&body[at..at + ref_size]))
            .filter(|r| *r < count)
            .ok_or_else(|| damaged("a reference to an object that does not exist"))
    };
    // Values the plist may expand to: twice its size covers the sharing of strings and
    // numbers that encoders do; only shared containers can go beyond.
    let max_values = (body.len() as u64).saturating_mul(2).saturating_add(1024);
    let Some((start, refs)) = children(root)? else {
        return Ok(());
    };
    const UNSEEN: u32 = u32::MAX;
    let mut height = vec![UNSEEN; count];
    let mut values = vec![0u64; count];
    let mut on_path = vec![false; count];
    struct Frame {
        object: usize,
        start: usize,
        refs: usize,
        next: usize,
        height: u32,
        values: u64,
    }
    let mut path = vec![Frame {
        object: root,
        start,
        refs,
        next: 0,
        height: 0,
        values: 1,
    }];
    on_path[root] = true;
    while let Some(top) = path.last() {
        if top.next < top.refs {
            let child = reference(top.start, top.next)?;
            let depth = path.len();
            let (child_height, child_values) = if height[child] != UNSEEN {
                (height[child], values[child])
            } else if on_path[child] {
                return Err(damaged("a container contains itself"));
            } else {
                match children(child)? {
                    None => {
                        height[child] = 0;
                        values[child] = 1;
                        (0, 1)
                    }
                    Some((start, refs)) => {
                        if depth >= MAX_DEPTH {
                            return Err(too_deep());
                        }
                        if let Some(top) = path.last_mut() {
                            top.next += 1;
                        }
                        on_path[child] = true;
                        path.push(Frame {
                            object: child,
                            start,
                            refs,
                            next: 0,
                            height: 0,
                            values: 1,
                        });
                        continue;
                    }
                }
            };
            if let Some(top) = path.last_mut() {
                top.next += 1;
                top.height = top.height.max(child_height + 1);
                top.values = top.values.saturating_add(child_values);
            }
        } else {
            let Some(done) = path.pop() else { break };
            if done.values > max_values {
                return Err(MdmError::TooComplex {
                    detail: format!(
                        "expands to more than {max_values} values through objects shared by several containers"
                    ),
                });
            }
            on_path[done.object] = false;
            height[done.object] = done.height;
            values[done.object] = done.values;
            if let Some(parent) = path.last_mut() {
                parent.height = parent.height.max(done.height + 1);
                parent.values = parent.values.saturating_add(done.values);
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod shape_tests {
    use super::*;

    fn nested_xml(depth: usize) -> Vec<u8> {
        let mut s = String::from("<?xml version=\"1.0\"?>\n<plist version=\"1.0\">");
        for _ in 0..depth {
            s.push_str("<array>");
        }
        s.push_str("<dict/><array />");
        for _ in 0..depth {
            s.push_str("</array>");
        }
        s.push_str("</plist>");
        s.into_bytes()
    }

    #[test]
    fn deep_xml_is_refused_before_parsing() {
        // Deep enough to overflow the stack if it were built into a value.
        let e = parse_value(&nested_xml(200_000)).unwrap_err();
        assert_eq!(e.code(), "too_complex");
        assert!(e.to_string().contains("more than 100 levels"), "{e}");
        assert_eq!(
            parse_value(&nested_xml(MAX_DEPTH + 1)).unwrap_err().code(),
            "too_complex"
        );
        // Self-closing and empty containers do not count.
        assert!(parse_value(&nested_xml(MAX_DEPTH)).is_ok());
    }

    fn nested_value(depth: usize) -> Value {
        let mut v = Value::Boolean(true);
        for _ in 0..depth {
            v = Value::Array(vec![v]);
        }
        v
    }

    fn binary(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        plist::to_writer_binary(&mut out, v).unwrap();
        out
    }

    #[test]
    fn deep_binary_is_refused_before_parsing() {
        let e = parse_value(&binary(&nested_value(MAX_DEPTH + 1))).unwrap_err();
        assert_eq!(e.code(), "too_complex");
        assert_eq!(
            parse_value(&binary(&nested_value(MAX_DEPTH))).unwrap(),
            nested_value(MAX_DEPTH)
        );
    }

    /// A binary plist by hand: object 0 is `true`, object k (1..=n) an array holding object
    /// k-1 `fan_out` times; the root is object n.
    fn shared_arrays(n: usize, fan_out: u8) -> Vec<u8> {
        let mut out = b"bplist00".to_vec();
        let mut offsets = vec![out.len()];
        out.push(0x09); // true
        for k in 1..=n {
            offsets.push(out.len());
            out.push(0xA0 | fan_out);
            for _ in 0..fan_out {
                out.extend_from_slice(&((k - 1) as u16).to_be_bytes());
            }
        }
        let table = out.len();
        for o in &offsets {
            out.extend_from_slice(&(*o as u32).to_be_bytes());
        }
        out.extend_from_slice(&[0; 6]);
        out.push(4); // offset size
        out.push(2); // reference size
        out.extend_from_slice(&(offsets.len() as u64).to_be_bytes());
        out.extend_from_slice(&(n as u64).to_be_bytes());
        out.extend_from_slice(&(table as u64).to_be_bytes());
        out
    }

    #[test]
    fn shared_objects_cannot_blow_up() {
        // 2^40 values from a few hundred bytes.
        let e = parse_value(&shared_arrays(40, 2)).unwrap_err();
        assert_eq!(e.code(), "too_complex");
        assert!(e.to_string().contains("shared by several containers"), "{e}");
        // A little sharing is fine, and the hand-made file is one the plist crate reads.
        let v = parse_value(&shared_arrays(3, 2)).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn damaged_binary_plists_are_refused() {
        let good = shared_arrays(3, 2);
        let mut cycle = good.clone();
        // Make object 1 refer to itself.
        cycle[10] = 0;
        cycle[11] = 1;
        let e = parse_value(&cycle).unwrap_err();
        assert!(e.to_string().contains("contains itself"), "{e}");

        let mut bad_ref = good.clone();
        bad_ref[10] = 0x7f;
        let e = parse_value(&bad_ref).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");

        let mut bad_table = good.clone();
        let n = bad_table.len();
        bad_table[n - 1] = 0xff;
        let e = parse_value(&bad_table).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");

        let e = parse_value(b"bplist00short").unwrap_err();
        assert!(e.to_string().contains("shorter than"), "{e}");
    }
}
