//! A minimal DER writer (ITU-T X.690) for the structures SCEP answers are made of.
//!
//! OpenSSL's Rust binding can sign CMS messages but cannot add the signed attributes SCEP
//! needs, so `CertRep` messages are assembled here from their parts: every function returns
//! one complete element (identifier, definite length, contents). Only low tag numbers are
//! needed. SET OF is sorted as DER requires, which matters for signed attributes: their DER
//! encoding is what gets signed.

/// Identifier octets used below.
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const OID: u8 = 0x06;
pub(crate) const UTF8_STRING: u8 = 0x0c;
pub(crate) const PRINTABLE_STRING: u8 = 0x13;
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;

/// One element with the given identifier octet and contents.
pub(crate) fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = &bytes[skip..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(contents);
    out
}

/// SEQUENCE of already encoded elements, in order.
pub(crate) fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// SET OF already encoded elements, sorted by their encodings as DER requires.
pub(crate) fn set_of(mut parts: Vec<Vec<u8>>) -> Vec<u8> {
    parts.sort();
    tlv(SET, &parts.concat())
}

/// `[n]` constructed, context-specific: an EXPLICIT tag around `contents`, or an IMPLICIT
/// tag replacing a SEQUENCE's or SET's own when `contents` are that SEQUENCE's contents.
pub(crate) fn context(n: u8, contents: &[u8]) -> Vec<u8> {
    tlv(0xa0 | (n & 0x1f), contents)
}

pub(crate) fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv(OCTET_STRING, bytes)
}

pub(crate) fn null() -> Vec<u8> {
    tlv(NULL, &[])
}

/// A non-negative INTEGER.
pub(crate) fn unsigned_integer(value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    let mut contents = Vec::with_capacity(9);
    if bytes[skip] & 0x80 != 0 {
        contents.push(0);
    }
    contents.extend_from_slice(&bytes[skip..]);
    tlv(INTEGER, &contents)
}

/// Whether every character is in PrintableString's repertoire (X.680 §41.4).
pub(crate) fn is_printable(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                ' ' | '\'' | '(' | ')' | '+' | ',' | '-' | '.' | '/' | ':' | '=' | '?'
            )
    })
}

/// A PrintableString when the text fits its repertoire, else a UTF8String.
pub(crate) fn text(s: &str) -> Vec<u8> {
    if is_printable(s) {
        tlv(PRINTABLE_STRING, s.as_bytes())
    } else {
        tlv(UTF8_STRING, s.as_bytes())
    }
}

pub(crate) fn printable(s: &str) -> Vec<u8> {
    tlv(PRINTABLE_STRING, s.as_bytes())
}

/// An OBJECT IDENTIFIER from its dotted form. Only used with this crate's constants, which a
/// test round-trips through the BER reader; a malformed arc would be written as 0.
pub(crate) fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u128> = dotted.split('.').map(|a| a.parse::<u128>().unwrap_or(0)).collect();
    let mut contents = Vec::new();
    let (first, rest) = match arcs.as_slice() {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        [a] => (a * 40, &[][..]),
        [] => (0, &[][..]),
    };
    push_base128(&mut contents, first);
    for &arc in rest {
        push_base128(&mut contents, arc);
    }
    tlv(OID, &contents)
}

fn push_base128(out: &mut Vec<u8>, mut value: u128) {
    let mut digits = [0u8; 19];
    let mut n = 0;
    loop {
        digits[n] = (value & 0x7f) as u8;
        n += 1;
        value >>= 7;
        if value == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        let more = if i > 0 { 0x80 } else { 0 };
        out.push(digits[i] | more);
    }
}

/// AlgorithmIdentifier with NULL parameters (what RSA and, by long habit, digest algorithm
/// identifiers carry in CMS; every SCEP client accepts it).
pub(crate) fn algorithm(dotted: &str) -> Vec<u8> {
    sequence(&[&oid(dotted), &null()])
}

/// Attribute ::= SEQUENCE { attrType OID, attrValues SET OF value } with one value.
pub(crate) fn attribute(dotted: &str, value: Vec<u8>) -> Vec<u8> {
    sequence(&[&oid(dotted), &set_of(vec![value])])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ber::{Reader, Tag, decode_oid};
    use crate::scep::oid as oids;

    #[test]
    fn lengths_short_and_long() {
        assert_eq!(tlv(OCTET_STRING, &[1, 2]), vec![0x04, 0x02, 1, 2]);
        let long = tlv(OCTET_STRING, &[7; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        let longer = tlv(OCTET_STRING, &[7; 70_000]);
        assert_eq!(&longer[..5], &[0x04, 0x83, 0x01, 0x11, 0x70]);
        let e = Reader::new(&longer).read().unwrap();
        assert_eq!(e.contents.len(), 70_000);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(unsigned_integer(0), vec![0x02, 0x01, 0x00]);
        assert_eq!(unsigned_integer(1), vec![0x02, 0x01, 0x01]);
        assert_eq!(unsigned_integer(0x7f), vec![0x02, 0x01, 0x7f]);
        assert_eq!(unsigned_integer(0x80), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(0x0100), vec![0x02, 0x02, 0x01, 0x00]);
        assert_eq!(
            unsigned_integer(u64::MAX),
            vec![0x02, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn every_constant_oid_round_trips() {
        for dotted in [
            oids::DATA,
            oids::SIGNED_DATA,
            oids::ENVELOPED_DATA,
            oids::CONTENT_TYPE,
            oids::MESSAGE_DIGEST,
            oids::CHALLENGE_PASSWORD,
            oids::EXTENSION_REQUEST,
            oids::SCEP_MESSAGE_TYPE,
            oids::SCEP_PKI_STATUS,
            oids::SCEP_FAIL_INFO,
            oids::SCEP_SENDER_NONCE,
            oids::SCEP_RECIPIENT_NONCE,
            oids::SCEP_TRANSACTION_ID,
            oids::MD5,
            oids::SHA1,
            oids::SHA224,
            oids::SHA256,
            oids::SHA384,
            oids::SHA512,
            oids::RSA_ENCRYPTION,
            oids::DES_CBC,
            oids::DES_EDE3_CBC,
            oids::AES_128_CBC,
            oids::AES_192_CBC,
            oids::AES_256_CBC,
            oids::SUBJECT_ALT_NAME,
        ] {
            let encoded = oid(dotted);
            let e = Reader::new(&encoded).read().unwrap();
            assert_eq!(e.tag, Tag::OID);
            assert_eq!(decode_oid(e.contents).unwrap(), dotted);
        }
        // A known encoding, byte for byte.
        assert_eq!(
            oid("1.2.840.113549.1.7.2"),
            vec![0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]
        );
    }

    #[test]
    fn set_of_is_sorted() {
        let a = printable("b");
        let b = printable("a");
        let c = octet_string(&[0xff]);
        let set = set_of(vec![a.clone(), b.clone(), c.clone()]);
        let mut expected = vec![0x31, 9];
        expected.extend_from_slice(&c);
        expected.extend_from_slice(&b);
        expected.extend_from_slice(&a);
        assert_eq!(set, expected);
    }

    #[test]
    fn text_picks_the_narrowest_type() {
        assert_eq!(text("Abc 1+2")[0], PRINTABLE_STRING);
        assert_eq!(text("a_b")[0], UTF8_STRING);
        assert_eq!(text("é")[0], UTF8_STRING);
        assert!(!is_printable("a@b"));
        assert!(is_printable("dGVzdA=="));
    }
}
