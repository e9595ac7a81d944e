//! Apple's time format: RFC 3339 UTC with whole seconds, `YYYY-MM-DDTHH:MM:SSZ`.

use serde::{Deserialize, Deserializer, Serializer};
use time::OffsetDateTime;

/// A formatted timestamp on the stack (no allocation).
pub(crate) struct Stamp {
    buf: [u8; 20],
}

impl Stamp {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.buf).unwrap_or("1970-01-01T00:00:00Z")
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Format Unix seconds.
pub(crate) fn stamp(unix: i64) -> Stamp {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    let mut buf = *b"0000-00-00T00:00:00Z";
    let put = |buf: &mut [u8; 20], at: usize, v: u32, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut buf, 0, y, 4);
    put(&mut buf, 5, m, 2);
    put(&mut buf, 8, d, 2);
    put(&mut buf, 11, (secs / 3600) as u32, 2);
    put(&mut buf, 14, ((secs % 3600) / 60) as u32, 2);
    put(&mut buf, 17, (secs % 60) as u32, 2);
    Stamp { buf }
}

/// Format a time as `YYYY-MM-DDTHH:MM:SSZ` (sub-seconds dropped).
pub fn format(t: OffsetDateTime) -> String {
    stamp(t.unix_timestamp()).as_str().to_owned()
}

/// Parse RFC 3339 (any offset, optional fraction).
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

pub(crate) fn ser<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(stamp(t.unix_timestamp()).as_str())
}

pub(crate) fn ser_opt<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser(t, s),
        None => s.serialize_none(),
    }
}

pub(crate) mod serde_secs {
    use super::*;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        super::ser(t, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {s}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_match_time_crate() {
        for unix in [
            0i64,
            951_782_400,
            1_737_111_741,
            1_768_647_741,
            4_102_444_799,
            1_709_164_800,
        ] {
            let t = OffsetDateTime::from_unix_timestamp(unix).unwrap();
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            assert_eq!(stamp(unix).as_str(), expected);
        }
        assert_eq!(stamp(1_768_647_741).as_str(), "2026-01-17T11:02:21Z");
    }

    #[test]
    fn parse_round_trip() {
        let t = parse("2026-01-17T11:02:21Z").unwrap();
        assert_eq!(format(t), "2026-01-17T11:02:21Z");
    }
}
