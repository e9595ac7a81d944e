//! A small, bounded reader for BER-encoded (ITU-T X.690) data.
//!
//! Apple's server tokens and the SCEP messages devices send are CMS structures that may be in
//! BER with indefinite lengths, which DER-only parsers refuse. This reader walks
//! type-length-value elements over a borrowed byte slice:
//!
//! * it never allocates on the strength of a length field (elements are sub-slices of the input,
//!   and a length larger than what is left is an error);
//! * indefinite lengths are resolved by walking the children up to their end-of-contents
//!   marker, with nesting limited to [`MAX_DEPTH`] levels so that recursion stays bounded;
//! * every malformation (truncation, reserved length forms, primitive elements with indefinite
//!   length, stray end-of-contents markers, oversized tag numbers) is an error, never a panic.
//!
//! Only the few universal types its users need are decoded (OBJECT IDENTIFIER, INTEGER, and
//! the contents of string types, primitive or constructed); everything else is handed out as
//! raw slices.

use std::fmt;

/// How deeply constructed elements may nest. Apple's token nests 10 levels deep, a SCEP
/// request about 12.
pub(crate) const MAX_DEPTH: usize = 32;

/// The longest OBJECT IDENTIFIER encoding accepted (real ones are well under 32 bytes).
const MAX_OID_LEN: usize = 64;

/// What went wrong while reading BER, with the absolute byte offset where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BerError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for BerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl std::error::Error for BerError {}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, BerError> {
    Err(BerError {
        offset,
        message: message.into(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Universal,
    Application,
    Context,
    Private,
}

/// An identifier octet (or octets): class, primitive/constructed, tag number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    pub class: Class,
    pub constructed: bool,
    pub number: u32,
}

impl Tag {
    pub const BOOLEAN: Tag = Tag::universal(1, false);
    pub const INTEGER: Tag = Tag::universal(2, false);
    pub const OCTET_STRING: Tag = Tag::universal(4, false);
    pub const OID: Tag = Tag::universal(6, false);
    pub const UTF8_STRING: Tag = Tag::universal(12, false);
    pub const PRINTABLE_STRING: Tag = Tag::universal(19, false);
    pub const IA5_STRING: Tag = Tag::universal(22, false);
    pub const SEQUENCE: Tag = Tag::universal(16, true);
    pub const SET: Tag = Tag::universal(17, true);

    pub const fn universal(number: u32, constructed: bool) -> Tag {
        Tag {
            class: Class::Universal,
            constructed,
            number,
        }
    }

    pub const fn context(number: u32, constructed: bool) -> Tag {
        Tag {
            class: Class::Context,
            constructed,
            number,
        }
    }

    /// The same tag, ignoring the primitive/constructed bit (BER strings may be either).
    pub fn same_type(&self, other: &Tag) -> bool {
        self.class == other.class && self.number == other.number
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let form = if self.constructed { "constructed" } else { "primitive" };
        match (self.class, self.number) {
            (Class::Universal, 2) => f.write_str("INTEGER"),
            (Class::Universal, 4) => write!(f, "{form} OCTET STRING"),
            (Class::Universal, 5) => f.write_str("NULL"),
            (Class::Universal, 6) => f.write_str("OBJECT IDENTIFIER"),
            (Class::Universal, 16) => f.write_str("SEQUENCE"),
            (Class::Universal, 17) => f.write_str("SET"),
            (Class::Universal, n) => write!(f, "{form} universal tag {n}"),
            (Class::Application, n) => write!(f, "{form} [APPLICATION {n}]"),
            (Class::Context, n) => write!(f, "{form} [{n}]"),
            (Class::Private, n) => write!(f, "{form} [PRIVATE {n}]"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Definite(usize),
    Indefinite,
}

/// Parses the identifier and length octets at the start of `input`.
/// Returns the tag, the length and the number of header bytes. `base` is only used for error offsets.
fn read_header(input: &[u8], base: usize) -> Result<(Tag, Length, usize), BerError> {
    let Some(&first) = input.first() else {
        return err(base, "the data ends where an element should start");
    };
    let class = match first >> 6 {
        0 => Class::Universal,
        1 => Class::Application,
        2 => Class::Context,
        _ => Class::Private,
    };
    let constructed = first & 0x20 != 0;
    let mut pos = 1;
    let mut number = u32::from(first & 0x1f);
    if number == 0x1f {
        // High tag number form: base-128 digits, most significant first.
        number = 0;
        loop {
            let Some(&b) = input.get(pos) else {
                return err(base + pos, "the data ends inside a tag number");
            };
            if pos == 1 && b == 0x80 {
                return err(base + pos, "a tag number is padded with a leading zero digit");
            }
            if number > (u32::MAX >> 7) {
                return err(base + pos, "a tag number is too large");
            }
            number = (number << 7) | u32::from(b & 0x7f);
            pos += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let Some(&len_byte) = input.get(pos) else {
        return err(base + pos, "the data ends before a length");
    };
    pos += 1;
    let length = match len_byte {
        0x80 => {
            if !constructed {
                return err(base + pos - 1, "a primitive element has an indefinite length");
            }
            Length::Indefinite
        }
        0xff => return err(base + pos - 1, "a length uses the reserved form 0xFF"),
        n if n < 0x80 => Length::Definite(usize::from(n)),
        n => {
            let count = usize::from(n & 0x7f);
            if count > 8 {
                return err(base + pos - 1, "a length field is longer than 8 bytes");
            }
            let mut value: u64 = 0;
            for _ in 0..count {
                let Some(&b) = input.get(pos) else {
                    return err(base + pos, "the data ends inside a length");
                };
                value = (value << 8) | u64::from(b);
                pos += 1;
            }
            match usize::try_from(value) {
                Ok(v) => Length::Definite(v),
                Err(_) => return err(base + pos, "a length is larger than the whole file"),
            }
        }
    };
    Ok((
        Tag {
            class,
            constructed,
            number,
        },
        length,
        pos,
    ))
}

/// Reads the tag and the header length of the element at the start of `input`, without
/// looking at its contents (which may be cut short).
pub(crate) fn header(input: &[u8]) -> Result<(Tag, usize), BerError> {
    read_header(input, 0).map(|(tag, _, header_len)| (tag, header_len))
}

/// Reads just the tag at the start of `input`, if one can be read.
pub(crate) fn peek_tag(input: &[u8]) -> Option<Tag> {
    read_header(input, 0).ok().map(|(tag, _, _)| tag)
}

/// One element: its tag and contents, borrowed from the input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Element<'a> {
    pub tag: Tag,
    /// The contents octets (for an indefinite length: everything between the header and the end-of-contents marker).
    pub contents: &'a [u8],
    /// The whole encoding: header, contents and (for indefinite lengths) the end-of-contents marker.
    pub encoded: &'a [u8],
    /// Absolute offset of `encoded` in the outermost input, for error messages.
    pub offset: usize,
    header_len: usize,
    depth: usize,
}

impl<'a> Element<'a> {
    /// A reader over the children of a constructed element.
    pub fn children(&self) -> Result<Reader<'a>, BerError> {
        if !self.tag.constructed {
            return err(
                self.offset,
                format!("expected a constructed element, found {}", self.tag),
            );
        }
        Ok(Reader {
            input: self.contents,
            pos: 0,
            base: self.offset + self.header_len,
            depth: self.depth + 1,
        })
    }

    /// Decodes a primitive OBJECT IDENTIFIER into dotted form ("1.2.840.113549.1.7.3").
    pub fn oid(&self) -> Result<String, BerError> {
        if self.tag != Tag::OID {
            return err(
                self.offset,
                format!("expected an OBJECT IDENTIFIER, found {}", self.tag),
            );
        }
        decode_oid(self.contents).map_err(|message| BerError {
            offset: self.offset,
            message: message.to_owned(),
        })
    }

    /// The contents of a string type (OCTET STRING, PrintableString, UTF8String, …), which BER
    /// allows to be sent in pieces: a constructed string is the concatenation of its segments,
    /// each of the same type. Borrowed when primitive, copied when constructed.
    pub fn string_contents(&self) -> Result<std::borrow::Cow<'a, [u8]>, BerError> {
        if !self.tag.constructed {
            return Ok(std::borrow::Cow::Borrowed(self.contents));
        }
        let mut out = Vec::new();
        self.append_segments(self.tag, &mut out)?;
        Ok(std::borrow::Cow::Owned(out))
    }

    fn append_segments(&self, tag: Tag, out: &mut Vec<u8>) -> Result<(), BerError> {
        let mut r = self.children()?;
        while !r.is_empty() {
            let segment = r.read()?;
            if !segment.tag.same_type(&tag) {
                return err(
                    segment.offset,
                    format!("a segment of a constructed {tag} is a {}", segment.tag),
                );
            }
            if segment.tag.constructed {
                segment.append_segments(tag, out)?;
            } else {
                out.extend_from_slice(segment.contents);
            }
        }
        Ok(())
    }

    /// The contents of a primitive INTEGER: non-empty two's complement, big-endian.
    pub fn integer_bytes(&self) -> Result<&'a [u8], BerError> {
        if self.tag != Tag::INTEGER {
            return err(self.offset, format!("expected an INTEGER, found {}", self.tag));
        }
        if self.contents.is_empty() {
            return err(self.offset, "an INTEGER has no content");
        }
        Ok(self.contents)
    }
}

/// Reads consecutive elements from a slice.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    base: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader over a whole top-level input.
    pub fn new(input: &'a [u8]) -> Reader<'a> {
        Reader {
            input,
            pos: 0,
            base: 0,
            depth: 0,
        }
    }

    /// A reader over a slice that starts `base` bytes into the outermost input (for messages).
    pub fn with_offset(input: &'a [u8], base: usize) -> Reader<'a> {
        Reader {
            input,
            pos: 0,
            base,
            depth: 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// The tag of the next element, without consuming it (`None` at the end).
    pub fn peek(&self) -> Result<Option<Tag>, BerError> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(None);
        }
        read_header(rest, self.offset()).map(|(tag, _, _)| Some(tag))
    }

    /// Reads the next element. End-of-contents markers are not elements: one here is an error
    /// (the reader for an indefinite-length element stops before its marker).
    pub fn read(&mut self) -> Result<Element<'a>, BerError> {
        if self.depth > MAX_DEPTH {
            return err(
                self.offset(),
                format!("elements are nested more than {MAX_DEPTH} levels deep"),
            );
        }
        let start = self.pos;
        let offset = self.offset();
        let rest = self.input.get(start..).unwrap_or_default();
        let (tag, length, header_len) = read_header(rest, offset)?;
        if tag == Tag::universal(0, false) {
            return err(offset, "unexpected end-of-contents marker");
        }
        let (contents_len, total_len) = match length {
            Length::Definite(len) => {
                if len > rest.len() - header_len {
                    return err(
                        offset,
                        format!(
                            "{tag} claims {len} bytes but only {} remain (the data is cut short)",
                            rest.len() - header_len
                        ),
                    );
                }
                (len, header_len + len)
            }
            Length::Indefinite => {
                let len = self.indefinite_contents_len(rest, header_len, offset)?;
                (len, header_len + len + 2)
            }
        };
        // Both ranges were checked above; `get` keeps that a matter of errors, not panics.
        let (Some(contents), Some(encoded)) = (rest.get(header_len..header_len + contents_len), rest.get(..total_len))
        else {
            return err(offset, "an element overruns the data");
        };
        let element = Element {
            tag,
            contents,
            encoded,
            offset,
            header_len,
            depth: self.depth,
        };
        self.pos = start + total_len;
        Ok(element)
    }

    /// Walks the children of an indefinite-length element (starting at `rest[header_len..]`)
    /// and returns the length of its contents, up to but excluding the end-of-contents marker.
    fn indefinite_contents_len(&self, rest: &'a [u8], header_len: usize, offset: usize) -> Result<usize, BerError> {
        let mut inner = Reader {
            input: rest.get(header_len..).unwrap_or_default(),
            pos: 0,
            base: offset + header_len,
            depth: self.depth + 1,
        };
        loop {
            match inner.input.get(inner.pos..inner.pos + 2) {
                None => {
                    return err(
                        inner.offset(),
                        "the data ends before the end of an indefinite-length element (the data is cut short)",
                    );
                }
                Some([0, 0]) => return Ok(inner.pos),
                Some(_) => {
                    inner.read()?;
                }
            }
        }
    }

    /// Reads the next element and checks its tag.
    pub fn expect(&mut self, tag: Tag, what: &str) -> Result<Element<'a>, BerError> {
        let offset = self.offset();
        if self.is_empty() {
            return err(offset, format!("{what} is missing"));
        }
        let element = self.read()?;
        if element.tag != tag {
            return err(offset, format!("expected {what} ({tag}), found {}", element.tag));
        }
        Ok(element)
    }

    /// Fails if anything is left.
    pub fn finish(&self, what: &str) -> Result<(), BerError> {
        if self.is_empty() {
            Ok(())
        } else {
            err(self.offset(), format!("unexpected data after {what}"))
        }
    }
}

/// Decodes OBJECT IDENTIFIER contents into dotted decimal. Arcs are limited to 128 bits.
pub(crate) fn decode_oid(contents: &[u8]) -> Result<String, &'static str> {
    if contents.is_empty() {
        return Err("an OBJECT IDENTIFIER is empty");
    }
    if contents.len() > MAX_OID_LEN {
        return Err("an OBJECT IDENTIFIER is implausibly long");
    }
    let mut out = String::new();
    let mut value: u128 = 0;
    let mut first = true;
    let mut in_arc = false;
    for &b in contents {
        if !in_arc && b == 0x80 {
            return Err("an OBJECT IDENTIFIER arc is padded with a leading zero digit");
        }
        if value > (u128::MAX >> 7) {
            return Err("an OBJECT IDENTIFIER arc is too large");
        }
        value = (value << 7) | u128::from(b & 0x7f);
        in_arc = b & 0x80 != 0;
        if !in_arc {
            if first {
                let (a, b) = match value {
                    0..40 => (0, value),
                    40..80 => (1, value - 40),
                    _ => (2, value - 80),
                };
                out.push_str(&format!("{a}.{b}"));
                first = false;
            } else {
                out.push_str(&format!(".{value}"));
            }
            value = 0;
        }
    }
    if in_arc {
        return Err("an OBJECT IDENTIFIER ends in the middle of an arc");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> Result<Vec<Element<'_>>, BerError> {
        let mut r = Reader::new(input);
        let mut out = Vec::new();
        while !r.is_empty() {
            out.push(r.read()?);
        }
        Ok(out)
    }

    #[test]
    fn definite_short_and_long_lengths() {
        let short = [0x04, 0x03, 1, 2, 3];
        let e = Reader::new(&short).read().unwrap();
        assert_eq!(e.tag, Tag::OCTET_STRING);
        assert_eq!(e.contents, &[1, 2, 3]);
        assert_eq!(e.encoded, &short);

        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7u8, 256));
        let e = Reader::new(&long).read().unwrap();
        assert_eq!(e.contents.len(), 256);

        // BER allows non-minimal long-form lengths.
        let padded = [0x04, 0x84, 0, 0, 0, 2, 9, 9];
        assert_eq!(Reader::new(&padded).read().unwrap().contents, &[9, 9]);
    }

    #[test]
    fn indefinite_lengths_nest() {
        // SEQUENCE (indef) { [0] (indef) { OCTET STRING "ab" } , INTEGER 5 }
        let data = [
            0x30, 0x80, 0xa0, 0x80, 0x04, 0x02, b'a', b'b', 0x00, 0x00, 0x02, 0x01, 0x05, 0x00, 0x00,
        ];
        let all = read_all(&data).unwrap();
        assert_eq!(all.len(), 1);
        let seq = all[0];
        assert_eq!(seq.tag, Tag::SEQUENCE);
        assert_eq!(seq.encoded.len(), data.len());
        assert_eq!(seq.contents.len(), data.len() - 4);
        let mut children = seq.children().unwrap();
        let ctx = children.expect(Tag::context(0, true), "[0]").unwrap();
        assert_eq!(ctx.encoded.len(), 8);
        let mut inner = ctx.children().unwrap();
        assert_eq!(inner.expect(Tag::OCTET_STRING, "octets").unwrap().contents, b"ab");
        inner.finish("octets").unwrap();
        assert_eq!(
            children.expect(Tag::INTEGER, "int").unwrap().integer_bytes().unwrap(),
            &[5]
        );
        children.finish("int").unwrap();
    }

    #[test]
    fn truncation_is_an_error_at_every_length() {
        let data = [
            0x30, 0x80, 0xa0, 0x80, 0x04, 0x02, b'a', b'b', 0x00, 0x00, 0x02, 0x01, 0x05, 0x00, 0x00,
        ];
        for n in 0..data.len() {
            assert!(Reader::new(&data[..n]).read().is_err(), "length {n}");
        }
    }

    #[test]
    fn malformations_are_errors() {
        // Primitive with indefinite length.
        assert!(Reader::new(&[0x04, 0x80, 0, 0]).read().is_err());
        // Reserved length form.
        assert!(Reader::new(&[0x04, 0xff]).read().is_err());
        // Length longer than the data.
        assert!(Reader::new(&[0x04, 0x05, 1]).read().is_err());
        // Absurd length field.
        assert!(
            Reader::new(&[0x04, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .read()
                .is_err()
        );
        assert!(Reader::new(&[0x04, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 1]).read().is_err());
        // Stray end-of-contents.
        assert!(Reader::new(&[0x00, 0x00]).read().is_err());
        // Unterminated high tag number, and an oversized one.
        assert!(Reader::new(&[0x1f, 0x81]).read().is_err());
        assert!(
            Reader::new(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00])
                .read()
                .is_err()
        );
        // Indefinite element whose child overruns it.
        assert!(Reader::new(&[0x30, 0x80, 0x04, 0x05, 1, 0, 0]).read().is_err());
    }

    #[test]
    fn high_tag_numbers() {
        let data = [0x9f, 0x81, 0x00, 0x01, 0x07];
        let e = Reader::new(&data).read().unwrap();
        assert_eq!(e.tag, Tag::context(128, false));
        assert_eq!(e.contents, &[7]);
    }

    #[test]
    fn nesting_depth_is_limited() {
        let mut deep = Vec::new();
        for _ in 0..(MAX_DEPTH + 5) {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        for _ in 0..(MAX_DEPTH + 5) {
            deep.extend_from_slice(&[0x00, 0x00]);
        }
        let e = Reader::new(&deep).read().unwrap_err();
        assert!(e.message.contains("nested"), "{e}");

        // Very deep nesting of unterminated indefinite elements must not overflow the stack.
        let hostile = [0x30u8, 0x80].repeat(400_000);
        assert!(Reader::new(&hostile).read().is_err());

        // Definite lengths are checked when descending, too.
        let mut def = vec![0x04, 0x00];
        for _ in 0..(MAX_DEPTH + 5) {
            let mut outer = vec![0x30, u8::try_from(def.len()).unwrap()];
            outer.extend_from_slice(&def);
            def = outer;
        }
        let mut e = Reader::new(&def).read().unwrap();
        let failure = loop {
            match e.children().and_then(|mut r| r.read()) {
                Ok(child) => e = child,
                Err(failure) => break failure,
            }
        };
        assert!(failure.message.contains("nested"), "{failure}");
    }

    #[test]
    fn strings_in_pieces() {
        let primitive = [0x04, 0x02, b'a', b'b'];
        let e = Reader::new(&primitive).read().unwrap();
        assert_eq!(&*e.string_contents().unwrap(), b"ab");

        // Constructed OCTET STRING (indefinite) holding "ab", then a nested constructed "cd".
        let pieces = [
            0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x24, 0x04, 0x04, 0x02, b'c', b'd', 0x00, 0x00,
        ];
        let e = Reader::new(&pieces).read().unwrap();
        assert_eq!(&*e.string_contents().unwrap(), b"abcd");

        // A segment of another type is an error.
        let mixed = [0x24, 0x04, 0x13, 0x02, b'a', b'b'];
        let e = Reader::new(&mixed).read().unwrap();
        assert!(e.string_contents().is_err());
    }

    #[test]
    fn oids() {
        assert_eq!(
            decode_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03]).unwrap(),
            "1.2.840.113549.1.7.3"
        );
        assert_eq!(
            decode_oid(&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02]).unwrap(),
            "2.16.840.1.101.3.4.1.2"
        );
        assert_eq!(decode_oid(&[0x88, 0x37, 0x01]).unwrap(), "2.999.1");
        assert!(decode_oid(&[]).is_err());
        assert!(decode_oid(&[0x2a, 0x86]).is_err());
        assert!(decode_oid(&[0x2a, 0x80, 0x01]).is_err());
        assert!(decode_oid(&[0xff; 30]).is_err());
        assert!(decode_oid(&[0x01; 65]).is_err());
    }
}
