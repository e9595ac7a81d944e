//! Tolerant field deserializers: one odd value from Apple must not fail a page of 1000 devices.
//!
//! Each helper reads any JSON value and turns what it cannot use into `None` (or an empty
//! collection) instead of an error. They are used with `#[serde(default, deserialize_with = …)]`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// Any value of type `T`; a value of another shape becomes `None`.
pub(crate) fn any<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    if value.is_null() {
        return Ok(None);
    }
    Ok(serde_json::from_value(value).ok())
}

/// A string; numbers and booleans are kept as their JSON text, an array of strings is joined
/// with `,`, anything else becomes `None`.
pub(crate) fn string<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => Some(s),
        v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
        Value::Array(items) => {
            let strings: Vec<String> = items.into_iter().filter_map(scalar_string).collect();
            (!strings.is_empty()).then(|| strings.join(","))
        }
        _ => None,
    })
}

/// A list of strings; a single string becomes a one-element list.
pub(crate) fn strings<'de, D>(deserializer: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::Array(items) => Some(items.into_iter().filter_map(scalar_string).collect()),
        Value::Null => None,
        v => scalar_string(v).map(|s| vec![s]),
    })
}

/// A list of strings or nothing: `null`, a missing key or a value of another shape give an
/// empty list.
pub(crate) fn string_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(strings(deserializer)?.unwrap_or_default())
}

fn scalar_string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

/// A boolean; also `"true"` / `"false"` strings and 0 / 1.
pub(crate) fn boolean<'de, D>(deserializer: D) -> Result<Option<bool>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::Bool(b) => Some(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        Value::Number(n) if n.as_u64() == Some(1) => Some(true),
        Value::Number(n) if n.as_u64() == Some(0) => Some(false),
        _ => None,
    })
}

/// A boolean that is `false` when missing or unreadable.
pub(crate) fn flag<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(boolean(deserializer)?.unwrap_or(false))
}

/// An unsigned integer; also a numeric string.
pub(crate) fn unsigned<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let n = match Value::deserialize(deserializer)? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    Ok(n.and_then(|n| T::try_from(n).ok()))
}

/// A list of `T`; `null` or a missing key give an empty list. Unlike the other helpers, an
/// element that is not a `T` is an error: dropping devices silently would be worse.
pub(crate) fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A map; `null` or a missing key give an empty map.
pub(crate) fn map<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A time in ISO 8601 / RFC 3339; `None` when missing, not a string, unparsable, or Go's
/// zero time (`0001-01-01T00:00:00Z`, which nanodep-style servers send for "unset").
pub(crate) fn time<'de, D>(deserializer: D) -> Result<Option<OffsetDateTime>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => parse_time(&s),
        _ => None,
    })
}

/// Writes a time as RFC 3339 (the skip-if-`None` attribute handles `None`).
pub(crate) fn serialize_time<S>(value: &Option<OffsetDateTime>, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
{
    match value.and_then(|t| t.format(&Rfc3339).ok()) {
        Some(text) => serializer.serialize_str(&text),
        None => serializer.serialize_none(),
    }
}

/// Parses the time formats seen from Apple and simulators: RFC 3339 (`2018-09-08T16:49:09Z`,
/// with fractions or offsets), other ISO 8601 forms (`20180908T164909Z`, `+0000` offsets), a
/// date and time without offset (taken as UTC, `T` or space separated), or a bare date
/// (midnight UTC).
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| OffsetDateTime::parse(text, &Iso8601::DEFAULT).ok())
        .or_else(|| {
            let with_t = text.replacen(' ', "T", 1);
            PrimitiveDateTime::parse(
                &with_t,
                format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"),
            )
            .ok()
            .map(PrimitiveDateTime::assume_utc)
        })
        .or_else(|| {
            Date::parse(text, format_description!("[year]-[month]-[day]"))
                .ok()
                .map(|d| d.midnight().assume_utc())
        })?;
    (parsed.year() > 1).then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn time_formats() {
        let expected = datetime!(2018-09-08 16:49:09 UTC);
        for text in [
            "2018-09-08T16:49:09Z",
            "2018-09-08T16:49:09+00:00",
            "2018-09-08T18:49:09+02:00",
            "2018-09-08T16:49:09",
            "2018-09-08 16:49:09",
            " 2018-09-08T16:49:09Z ",
            "20180908T164909Z",
        ] {
            assert_eq!(parse_time(text), Some(expected), "{text}");
        }
        assert_eq!(
            parse_time("2018-09-08T16:49:09.250Z"),
            Some(datetime!(2018-09-08 16:49:09.25 UTC))
        );
        assert_eq!(parse_time("2018-09-08"), Some(datetime!(2018-09-08 0:00 UTC)));
        for bad in [
            "",
            "yesterday",
            "2018-13-45T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "1536425349",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
