//! A small DER writer and a BER/DER reader: just what SCEP needs where the `openssl` crate
//! has no API (authenticated attributes of a SignedData, the PKCS#10 attribute
//! `challengePassword`, reading `pkiStatus`/`failInfo`/`recipientNonce` back).
//!
//! Written from X.690 (DER/BER) and RFC 5652 (CMS).

/// Universal tags used here.
pub mod tag {
    /// BOOLEAN.
    pub const BOOLEAN: u8 = 0x01;
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// UTF8String.
    pub const UTF8_STRING: u8 = 0x0c;
    /// PrintableString.
    pub const PRINTABLE_STRING: u8 = 0x13;
    /// SEQUENCE (constructed).
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed).
    pub const SET: u8 = 0x31;
    /// BIT STRING.
    pub const BIT_STRING: u8 = 0x03;
}

/// Object identifiers (dotted form) used by SCEP and CMS.
pub mod oid {
    /// id-data.
    pub const DATA: &str = "1.2.840.113549.1.7.1";
    /// id-signedData.
    pub const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
    /// id-contentType attribute.
    pub const CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
    /// id-messageDigest attribute.
    pub const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
    /// id-signingTime attribute.
    pub const SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
    /// PKCS#9 challengePassword.
    pub const CHALLENGE_PASSWORD: &str = "1.2.840.113549.1.9.7";
    /// rsaEncryption.
    pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    /// sha256WithRSAEncryption.
    pub const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
    /// sha1WithRSAEncryption.
    pub const SHA1_WITH_RSA: &str = "1.2.840.113549.1.1.5";
    /// SHA-256.
    pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
    /// SHA-1.
    pub const SHA1: &str = "1.3.14.3.2.26";
    /// SCEP messageType (Verisign arc 2.16.840.1.113733.1.9.2).
    pub const SCEP_MESSAGE_TYPE: &str = "2.16.840.1.113733.1.9.2";
    /// SCEP pkiStatus.
    pub const SCEP_PKI_STATUS: &str = "2.16.840.1.113733.1.9.3";
    /// SCEP failInfo.
    pub const SCEP_FAIL_INFO: &str = "2.16.840.1.113733.1.9.4";
    /// SCEP senderNonce.
    pub const SCEP_SENDER_NONCE: &str = "2.16.840.1.113733.1.9.5";
    /// SCEP recipientNonce.
    pub const SCEP_RECIPIENT_NONCE: &str = "2.16.840.1.113733.1.9.6";
    /// SCEP transactionID.
    pub const SCEP_TRANSACTION_ID: &str = "2.16.840.1.113733.1.9.7";
}

/// A DER or BER input that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed DER: {0}")]
pub struct DerError(pub String);

fn err<T>(what: impl Into<String>) -> Result<T, DerError> {
    Err(DerError(what.into()))
}

// ---------------------------------------------------------------------------------------
// Writer

/// The length octets of a definite length.
pub fn length(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let mut out = vec![0x80 | (bytes.len() - skip) as u8];
    out.extend_from_slice(&bytes[skip..]);
    out
}

/// A TLV with a one-byte tag.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    out.extend(length(content.len()));
    out.extend_from_slice(content);
    out
}

/// SEQUENCE of already encoded elements.
pub fn sequence(items: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &items.concat())
}

/// SET OF already encoded elements, sorted as DER requires (by their encodings).
pub fn set_of(items: &[Vec<u8>]) -> Vec<u8> {
    let mut sorted: Vec<&Vec<u8>> = items.iter().collect();
    sorted.sort();
    let body: Vec<u8> = sorted.into_iter().flatten().copied().collect();
    tlv(tag::SET, &body)
}

/// A context-specific constructed tag `[n]` (EXPLICIT, or IMPLICIT for a constructed type).
pub fn context(n: u8, content: &[u8]) -> Vec<u8> {
    tlv(0xa0 | n, content)
}

/// OBJECT IDENTIFIER from its dotted form. Panics never: a bad OID string gives an error.
pub fn oid(dotted: &str) -> Result<Vec<u8>, DerError> {
    let arcs: Vec<u64> = dotted
        .split('.')
        .map(|a| a.parse::<u64>().map_err(|_| DerError(format!("bad OID {dotted}"))))
        .collect::<Result<_, _>>()?;
    if arcs.len() < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] >= 40) {
        return err(format!("bad OID {dotted}"));
    }
    let mut body = Vec::new();
    push_base128(&mut body, arcs[0] * 40 + arcs[1]);
    for &a in &arcs[2..] {
        push_base128(&mut body, a);
    }
    Ok(tlv(tag::OID, &body))
}

fn push_base128(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 10];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    let last = tmp.len() - 1;
    for (j, b) in tmp.iter().enumerate().skip(i) {
        out.push(if j == last { *b } else { b | 0x80 });
    }
}

/// INTEGER from big-endian unsigned magnitude bytes (a leading zero is added when needed).
pub fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let skip = magnitude
            .iter()
            .take_while(|b| **b == 0)
            .count()
            .min(magnitude.len().saturating_sub(1));
        &magnitude[skip..]
    };
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.is_empty() {
        body.push(0);
    } else {
        if trimmed[0] & 0x80 != 0 {
            body.push(0);
        }
        body.extend_from_slice(trimmed);
    }
    tlv(tag::INTEGER, &body)
}

/// A small non-negative INTEGER.
pub fn small_integer(v: u32) -> Vec<u8> {
    unsigned_integer(&v.to_be_bytes())
}

/// OCTET STRING.
pub fn octet_string(b: &[u8]) -> Vec<u8> {
    tlv(tag::OCTET_STRING, b)
}

/// PrintableString (the caller passes printable characters).
pub fn printable_string(s: &str) -> Vec<u8> {
    tlv(tag::PRINTABLE_STRING, s.as_bytes())
}

/// UTF8String.
pub fn utf8_string(s: &str) -> Vec<u8> {
    tlv(tag::UTF8_STRING, s.as_bytes())
}

/// NULL.
pub fn null() -> Vec<u8> {
    vec![tag::NULL, 0]
}

/// BIT STRING with no unused bits.
pub fn bit_string(b: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(b.len() + 1);
    body.push(0);
    body.extend_from_slice(b);
    tlv(tag::BIT_STRING, &body)
}

/// AlgorithmIdentifier with NULL parameters.
pub fn algorithm(dotted: &str) -> Result<Vec<u8>, DerError> {
    Ok(sequence(&[&oid(dotted)?, &null()]))
}

/// An Attribute: `SEQUENCE { type OID, values SET OF value }` with one value.
pub fn attribute(dotted: &str, value: Vec<u8>) -> Result<Vec<u8>, DerError> {
    Ok(sequence(&[&oid(dotted)?, &set_of(&[value])]))
}

// ---------------------------------------------------------------------------------------
// Reader

/// One element read from BER/DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element<'a> {
    /// The identifier octet (only one-byte tags are supported).
    pub tag: u8,
    /// The content octets. For an indefinite-length element, the content up to (not
    /// including) its end-of-contents octets.
    pub content: &'a [u8],
    /// The whole encoding (identifier, length, content and, for BER, end-of-contents).
    pub raw: &'a [u8],
}

impl<'a> Element<'a> {
    /// Whether the constructed bit is set.
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// The elements inside a constructed element.
    pub fn children(&self) -> Result<Vec<Element<'a>>, DerError> {
        if !self.constructed() {
            return err(format!("tag {:#04x} is not constructed", self.tag));
        }
        let mut out = Vec::new();
        let mut rest = self.content;
        while !rest.is_empty() {
            let (e, r) = read(rest)?;
            out.push(e);
            rest = r;
        }
        Ok(out)
    }

    /// The bytes of an OCTET STRING, primitive or constructed (BER segments are joined).
    pub fn octets(&self) -> Result<Vec<u8>, DerError> {
        match self.tag {
            tag::OCTET_STRING => Ok(self.content.to_vec()),
            0x24 => {
                let mut out = Vec::new();
                for c in self.children()? {
                    out.extend(c.octets()?);
                }
                Ok(out)
            }
            t => err(format!("expected OCTET STRING, found tag {t:#04x}")),
        }
    }

    /// The dotted form of an OBJECT IDENTIFIER.
    pub fn oid(&self) -> Result<String, DerError> {
        if self.tag != tag::OID || self.content.is_empty() {
            return err(format!("expected OBJECT IDENTIFIER, found tag {:#04x}", self.tag));
        }
        let mut arcs: Vec<u64> = Vec::new();
        let mut v: u64 = 0;
        for (i, b) in self.content.iter().enumerate() {
            if v > (u64::MAX >> 7) {
                return err("OID arc too large");
            }
            v = (v << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let (a, b) = if v < 40 {
                        (0, v)
                    } else if v < 80 {
                        (1, v - 40)
                    } else {
                        (2, v - 80)
                    };
                    arcs.push(a);
                    arcs.push(b);
                } else {
                    arcs.push(v);
                }
                v = 0;
            } else if i + 1 == self.content.len() {
                return err("truncated OID");
            }
        }
        Ok(arcs.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
    }

    /// The text of a string type (PrintableString, UTF8String, IA5String, …).
    pub fn text(&self) -> Result<String, DerError> {
        match self.tag {
            0x0c | 0x13 | 0x16 | 0x14 | 0x1a => {
                String::from_utf8(self.content.to_vec()).map_err(|_| DerError("string is not UTF-8".into()))
            }
            t => err(format!("expected a string, found tag {t:#04x}")),
        }
    }
}

/// Read one element from the front of `input`; returns it and the rest.
pub fn read(input: &[u8]) -> Result<(Element<'_>, &[u8]), DerError> {
    if input.len() < 2 {
        return err("truncated element");
    }
    let t = input[0];
    if t & 0x1f == 0x1f {
        return err("multi-byte tags are not supported");
    }
    let first = input[1];
    let (len, header) = if first < 0x80 {
        (Some(first as usize), 2)
    } else if first == 0x80 {
        (None, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n > 8 || input.len() < 2 + n {
            return err("bad length");
        }
        let mut l: usize = 0;
        for b in &input[2..2 + n] {
            l = l.checked_mul(256).ok_or_else(|| DerError("length overflow".into()))? + *b as usize;
        }
        (Some(l), 2 + n)
    };
    match len {
        Some(l) => {
            let end = header
                .checked_add(l)
                .filter(|e| *e <= input.len())
                .ok_or_else(|| DerError("element longer than its input".into()))?;
            Ok((
                Element {
                    tag: t,
                    content: &input[header..end],
                    raw: &input[..end],
                },
                &input[end..],
            ))
        }
        None => {
            if t & 0x20 == 0 {
                return err("indefinite length on a primitive element");
            }
            // Walk the children until the end-of-contents octets.
            let mut pos = header;
            loop {
                if input.len() < pos + 2 {
                    return err("missing end-of-contents");
                }
                if input[pos] == 0 && input[pos + 1] == 0 {
                    break;
                }
                let (_, rest) = read(&input[pos..])?;
                pos = input.len() - rest.len();
            }
            Ok((
                Element {
                    tag: t,
                    content: &input[header..pos],
                    raw: &input[..pos + 2],
                },
                &input[pos + 2..],
            ))
        }
    }
}

/// Read exactly one element that spans all of `input`.
pub fn parse(input: &[u8]) -> Result<Element<'_>, DerError> {
    let (e, rest) = read(input)?;
    if !rest.is_empty() {
        return err("trailing bytes after the element");
    }
    Ok(e)
}

/// The attributes of a `SET OF Attribute` (or `[0] IMPLICIT` one): (OID, first value).
pub fn attributes<'a>(set: &Element<'a>) -> Result<Vec<(String, Element<'a>)>, DerError> {
    let mut out = Vec::new();
    for a in set.children()? {
        let parts = a.children()?;
        if parts.len() != 2 {
            return err("an Attribute has a type and a set of values");
        }
        let values = parts[1].children()?;
        let Some(first) = values.first() else {
            return err("an Attribute without a value");
        };
        out.push((parts[0].oid()?, *first));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(length(0), vec![0]);
        assert_eq!(length(127), vec![127]);
        assert_eq!(length(128), vec![0x81, 0x80]);
        assert_eq!(length(256), vec![0x82, 1, 0]);
        assert_eq!(length(70_000), vec![0x83, 0x01, 0x11, 0x70]);
    }

    #[test]
    fn oids_round_trip() {
        for o in [
            oid::SCEP_MESSAGE_TYPE,
            oid::SHA256,
            oid::DATA,
            "2.999.3",
            "0.9.2342.19200300.100.1.1",
        ] {
            let enc = oid(o).unwrap();
            assert_eq!(parse(&enc).unwrap().oid().unwrap(), o);
        }
        // Known encoding: sha256 = 06 09 60 86 48 01 65 03 04 02 01.
        assert_eq!(
            oid(oid::SHA256).unwrap(),
            vec![0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]
        );
        assert!(oid("1").is_err());
        assert!(oid("1.x").is_err());
        assert!(oid("3.1").is_err());
    }

    #[test]
    fn integers() {
        assert_eq!(unsigned_integer(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0, 5]), vec![2, 1, 5]);
        assert_eq!(unsigned_integer(&[]), vec![2, 1, 0]);
        assert_eq!(small_integer(1), vec![2, 1, 1]);
        assert_eq!(small_integer(0), vec![2, 1, 0]);
    }

    #[test]
    fn set_of_is_sorted() {
        let a = printable_string("b");
        let b = printable_string("a");
        let s = set_of(&[a.clone(), b.clone()]);
        assert_eq!(s, tlv(tag::SET, &[b, a].concat()));
    }

    #[test]
    fn reads_nested_and_indefinite() {
        let inner = sequence(&[&small_integer(3), &octet_string(b"xy")]);
        let outer = context(0, &inner);
        let e = parse(&outer).unwrap();
        assert_eq!(e.tag, 0xa0);
        let kids = e.children().unwrap();
        assert_eq!(kids.len(), 1);
        let parts = kids[0].children().unwrap();
        assert_eq!(parts[1].octets().unwrap(), b"xy");

        // BER: SEQUENCE (indefinite) { constructed OCTET STRING (indefinite) { "ab", "c" } }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0,
        ];
        let e = parse(&ber).unwrap();
        let kids = e.children().unwrap();
        assert_eq!(kids.len(), 1);
        assert_eq!(kids[0].octets().unwrap(), b"abc");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(&[0x30]).is_err());
        assert!(parse(&[0x30, 0x05, 1]).is_err());
        assert!(parse(&[0x04, 0x80, 0, 0]).is_err());
        assert!(parse(&[0x30, 0x80, 0x04, 0x01, 1]).is_err());
        assert!(parse(&[0x02, 0x01, 1, 9]).is_err(), "trailing bytes");
        assert!(parse(&[0x1f, 0x01, 0]).is_err());
    }

    #[test]
    fn attributes_read_back() {
        let set = set_of(&[
            attribute(oid::SCEP_MESSAGE_TYPE, printable_string("19")).unwrap(),
            attribute(oid::SCEP_SENDER_NONCE, octet_string(&[7; 16])).unwrap(),
        ]);
        let e = parse(&set).unwrap();
        let attrs = attributes(&e).unwrap();
        let mt = attrs.iter().find(|(o, _)| o == oid::SCEP_MESSAGE_TYPE).unwrap();
        assert_eq!(mt.1.text().unwrap(), "19");
        let n = attrs.iter().find(|(o, _)| o == oid::SCEP_SENDER_NONCE).unwrap();
        assert_eq!(n.1.octets().unwrap(), vec![7; 16]);
    }
}
