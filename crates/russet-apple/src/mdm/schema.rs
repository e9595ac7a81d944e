//! Apple's MDM commands as Rust data: every request type Apple defines and the keys of its
//! `Command` dictionary (name, plist type, whether required, allowed values, nested keys),
//! and a validator of command dictionaries against them.
//!
//! The table ([`COMMANDS`]) follows Apple's published device management schema (the
//! `mdm/commands` definitions of the iOS 18.1 / macOS 15.1 release). A test
//! (`tests/mdm_schema.rs`) compares it key by key with Apple's YAML when that is available,
//! so a mismatch shows up there; keys Apple added in later releases must be added here before
//! raw commands using them are accepted.
//!
//! Conventions carried over from Apple's schema:
//!
//! * An `<array>` key's `subkeys` hold one entry describing every element. Apple lists the
//!   allowed values of a string element as that entry's own sub-keys (the queries of
//!   `DeviceInformation`); here they are the element's [`RangeList`].
//! * An `<array>` with several `<dictionary>` entries (`Settings`) takes elements of any of
//!   those forms, told apart by a required key with a single allowed value (`Item`).
//! * A key whose name starts with `ANY` stands for any key name (free-form dictionaries such as
//!   an app's managed configuration).
//! * `<real>` accepts integers too; `<any>` accepts every value.

mod commands;

use std::fmt::Write as _;

use plist::{Dictionary, Value};

use super::FieldErrors;
use super::plist_util::type_name;

pub use commands::COMMANDS;

/// A plist type as Apple's schema names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    String,
    Integer,
    Real,
    Boolean,
    Date,
    Data,
    Array,
    Dictionary,
    /// Any value.
    Any,
}

impl ValueType {
    /// Apple's name: `<string>`, `<integer>`, …
    pub fn apple_name(self) -> &'static str {
        match self {
            ValueType::String => "<string>",
            ValueType::Integer => "<integer>",
            ValueType::Real => "<real>",
            ValueType::Boolean => "<boolean>",
            ValueType::Date => "<date>",
            ValueType::Data => "<data>",
            ValueType::Array => "<array>",
            ValueType::Dictionary => "<dictionary>",
            ValueType::Any => "<any>",
        }
    }

    /// The type of Apple's name.
    pub fn from_apple_name(name: &str) -> Option<ValueType> {
        [
            ValueType::String,
            ValueType::Integer,
            ValueType::Real,
            ValueType::Boolean,
            ValueType::Date,
            ValueType::Data,
            ValueType::Array,
            ValueType::Dictionary,
            ValueType::Any,
        ]
        .into_iter()
        .find(|t| t.apple_name() == name)
    }

    /// Whether a plist value is of this type (`<real>` also takes integers).
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            ValueType::String => matches!(value, Value::String(_)),
            ValueType::Integer => matches!(value, Value::Integer(_)),
            ValueType::Real => matches!(value, Value::Real(_) | Value::Integer(_)),
            ValueType::Boolean => matches!(value, Value::Boolean(_)),
            ValueType::Date => matches!(value, Value::Date(_)),
            ValueType::Data => matches!(value, Value::Data(_)),
            ValueType::Array => matches!(value, Value::Array(_)),
            ValueType::Dictionary => matches!(value, Value::Dictionary(_)),
            ValueType::Any => true,
        }
    }
}

/// Whether a key must be present. Array element descriptions have no presence in Apple's
/// schema ([`Presence::Element`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presence {
    Required,
    Optional,
    /// The description of an array's elements.
    Element,
}

/// The values a key may take, when Apple lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeList {
    None,
    Strings(&'static [&'static str]),
    Integers(&'static [i64]),
}

/// One key of a command (or of a dictionary inside one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeySpec {
    pub key: &'static str,
    pub value_type: ValueType,
    pub presence: Presence,
    pub rangelist: RangeList,
    /// A dictionary's keys, or the description(s) of an array's elements.
    pub subkeys: &'static [KeySpec],
}

impl KeySpec {
    /// True for a key standing for any key name (`ANY`, `ANY index`, …).
    pub fn is_wildcard(&self) -> bool {
        self.key.starts_with("ANY")
    }

    pub const fn strings(mut self, values: &'static [&'static str]) -> KeySpec {
        self.rangelist = RangeList::Strings(values);
        self
    }

    pub const fn ints(mut self, values: &'static [i64]) -> KeySpec {
        self.rangelist = RangeList::Integers(values);
        self
    }

    pub const fn sub(mut self, subkeys: &'static [KeySpec]) -> KeySpec {
        self.subkeys = subkeys;
        self
    }
}

/// A required key.
pub const fn req(key: &'static str, value_type: ValueType) -> KeySpec {
    spec(key, value_type, Presence::Required)
}

/// An optional key.
pub const fn opt(key: &'static str, value_type: ValueType) -> KeySpec {
    spec(key, value_type, Presence::Optional)
}

/// The description of an array's elements.
pub const fn item(key: &'static str, value_type: ValueType) -> KeySpec {
    spec(key, value_type, Presence::Element)
}

const fn spec(key: &'static str, value_type: ValueType, presence: Presence) -> KeySpec {
    KeySpec {
        key,
        value_type,
        presence,
        rangelist: RangeList::None,
        subkeys: &[],
    }
}

/// One MDM command: its `RequestType` and the keys of its `Command` dictionary besides
/// `RequestType`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommandSpec {
    pub request_type: &'static str,
    pub keys: &'static [KeySpec],
}

pub(crate) const fn cmd(request_type: &'static str, keys: &'static [KeySpec]) -> CommandSpec {
    CommandSpec { request_type, keys }
}

/// The command of a request type, if Apple defines it (exact, case-sensitive).
pub fn command(request_type: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.request_type == request_type)
}

/// Every request type Apple defines, in alphabetical order.
pub fn request_types() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().map(|c| c.request_type)
}

/// Checks a `Command` dictionary against its request type's keys: every key known, of the
/// right type, with an allowed value, nested dictionaries and arrays likewise, and every
/// required key present. `RequestType` itself is not checked here. Problems are keyed by path
/// from `prefix` (e.g. `Command.Settings[0].Item`); an empty result means valid.
pub fn validate_command(spec: &CommandSpec, command: &Dictionary, prefix: &str) -> FieldErrors {
    let mut errors = FieldErrors::new();
    check_dictionary(prefix, command, spec.keys, &["RequestType"], &mut errors);
    errors
}

/// At most this many allowed values or keys are listed in a message.
const MAX_LISTED: usize = 24;

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    let mut out = String::new();
    for (i, item) in items.iter().take(MAX_LISTED).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(item);
    }
    if items.len() > MAX_LISTED {
        let _ = write!(out, " and {} more", items.len() - MAX_LISTED);
    }
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn check_dictionary(path: &str, dict: &Dictionary, specs: &[KeySpec], skip: &[&str], errors: &mut FieldErrors) {
    let wildcard = specs.iter().find(|s| s.is_wildcard());
    for (key, value) in dict {
        if skip.contains(&key.as_str()) {
            continue;
        }
        let key_path = join(path, key);
        match specs.iter().find(|s| !s.is_wildcard() && s.key == key) {
            Some(spec) => check_value(&key_path, value, spec, errors),
            None => match wildcard {
                Some(spec) => check_value(&key_path, value, spec, errors),
                None if specs.is_empty() => {
                    errors.insert(key_path, "is not a key Apple defines here: this takes no keys".into());
                }
                None => {
                    errors.insert(
                        key_path,
                        format!(
                            "is not a key Apple defines here (keys are case-sensitive; known: {})",
                            list(specs.iter().map(|s| s.key))
                        ),
                    );
                }
            },
        }
    }
    for spec in specs {
        if spec.presence == Presence::Required && !spec.is_wildcard() && !dict.contains_key(spec.key) {
            errors.insert(
                join(path, spec.key),
                format!("is required and must be {}", spec.value_type.apple_name()),
            );
        }
    }
}

fn check_value(path: &str, value: &Value, spec: &KeySpec, errors: &mut FieldErrors) {
    if !spec.value_type.accepts(value) {
        errors.insert(
            path.to_owned(),
            format!("must be {} but is {}", spec.value_type.apple_name(), type_name(value)),
        );
        return;
    }
    match (spec.rangelist, value) {
        (RangeList::Strings(allowed), Value::String(s)) if !allowed.contains(&s.as_str()) => {
            errors.insert(
                path.to_owned(),
                format!(
                    "is \"{s}\", which is not one of the values Apple allows (case-sensitive): {}",
                    list(allowed.iter().copied())
                ),
            );
            return;
        }
        (RangeList::Integers(allowed), Value::Integer(i)) if !i.as_signed().is_some_and(|v| allowed.contains(&v)) => {
            let names: Vec<String> = allowed.iter().map(i64::to_string).collect();
            errors.insert(
                path.to_owned(),
                format!(
                    "is {i}, which is not one of the values Apple allows: {}",
                    list(names.iter().map(String::as_str))
                ),
            );
            return;
        }
        _ => {}
    }
    if spec.subkeys.is_empty() {
        return;
    }
    match value {
        Value::Dictionary(d) => check_dictionary(path, d, spec.subkeys, &[], errors),
        Value::Array(elements) => {
            for (i, element) in elements.iter().enumerate() {
                let element_path = format!("{path}[{i}]");
                match spec.subkeys {
                    [only] => check_value(&element_path, element, only, errors),
                    alternatives => check_alternatives(&element_path, element, alternatives, errors),
                }
            }
        }
        _ => {}
    }
}

/// The name of a key that every alternative requires with a single allowed string value.
fn discriminator(alternatives: &[KeySpec]) -> Option<&'static str> {
    let first = alternatives.first()?;
    first
        .subkeys
        .iter()
        .filter(|k| k.presence == Presence::Required && matches!(k.rangelist, RangeList::Strings([_])))
        .map(|k| k.key)
        .find(|name| {
            alternatives.iter().all(|alt| {
                alt.subkeys.iter().any(|k| {
                    k.key == *name && k.presence == Presence::Required && matches!(k.rangelist, RangeList::Strings([_]))
                })
            })
        })
}

fn check_alternatives(path: &str, element: &Value, alternatives: &[KeySpec], errors: &mut FieldErrors) {
    let (Some(name), Value::Dictionary(d)) = (discriminator(alternatives), element) else {
        // No common discriminating key: the element must match one form.
        let mut first_errors = None;
        for alt in alternatives {
            let mut e = FieldErrors::new();
            check_value(path, element, alt, &mut e);
            if e.is_empty() {
                return;
            }
            first_errors.get_or_insert(e);
        }
        errors.append(&mut first_errors.unwrap_or_default());
        return;
    };
    let values = alternatives.iter().filter_map(|alt| {
        alt.subkeys
            .iter()
            .find(|k| k.key == name)
            .and_then(|k| match k.rangelist {
                RangeList::Strings([v]) => Some(*v),
                _ => None,
            })
    });
    let item_path = join(path, name);
    match d.get(name) {
        None => {
            errors.insert(
                item_path,
                format!("is required and names the kind of element: one of {}", list(values)),
            );
        }
        Some(Value::String(kind)) => {
            let chosen = alternatives.iter().find(|alt| {
                alt.subkeys
                    .iter()
                    .any(|k| k.key == name && matches!(k.rangelist, RangeList::Strings([v]) if v == kind))
            });
            match chosen {
                Some(alt) => check_value(path, element, alt, errors),
                None => {
                    errors.insert(
                        item_path,
                        format!(
                            "is \"{kind}\", which is not one Apple defines (case-sensitive): {}",
                            list(values)
                        ),
                    );
                }
            }
        }
        Some(other) => {
            errors.insert(item_path, format!("must be <string> but is {}", type_name(other)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(pairs: Vec<(&str, Value)>) -> Dictionary {
        let mut d = Dictionary::new();
        for (k, v) in pairs {
            d.insert(k.to_owned(), v);
        }
        d
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_owned())
    }

    #[test]
    fn the_table_is_sorted_unique_and_complete_for_russet_commands() {
        let names: Vec<&str> = request_types().collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            names, sorted,
            "COMMANDS must be sorted by request type without duplicates"
        );
        for rt in [
            "DeviceInformation",
            "SecurityInfo",
            "ProfileList",
            "InstallProfile",
            "RemoveProfile",
            "InstalledApplicationList",
            "DeviceLock",
            "EraseDevice",
            "RestartDevice",
            "DeviceConfigured",
            "Settings",
        ] {
            assert!(command(rt).is_some(), "{rt} missing");
        }
        assert!(command("devicelock").is_none());
    }

    #[test]
    fn unknown_and_missing_keys() {
        let spec = command("RemoveProfile").unwrap();
        let d = dict(vec![("RequestType", s("RemoveProfile")), ("Identifer", s("x"))]);
        let e = validate_command(spec, &d, "Command");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e["Command.Identifer"].contains("known: Identifier"), "{e:?}");
        assert_eq!(e["Command.Identifier"], "is required and must be <string>");

        let spec = command("DeviceConfigured").unwrap();
        let e = validate_command(spec, &dict(vec![("Foo", Value::Boolean(true))]), "Command");
        assert_eq!(e["Command.Foo"], "is not a key Apple defines here: this takes no keys");
    }

    #[test]
    fn types_and_rangelists() {
        let spec = command("EraseDevice").unwrap();
        let d = dict(vec![
            ("PreserveDataPlan", s("yes")),
            ("ObliterationBehavior", s("Sometimes")),
            (
                "ReturnToService",
                Value::Dictionary(dict(vec![("MDMProfileData", Value::Data(vec![1]))])),
            ),
        ]);
        let e = validate_command(spec, &d, "Command");
        assert_eq!(e["Command.PreserveDataPlan"], "must be <boolean> but is <string>");
        assert!(
            e["Command.ObliterationBehavior"].contains("Default, DoNotObliterate, ObliterateWithWarning, Always"),
            "{e:?}"
        );
        assert_eq!(
            e["Command.ReturnToService.Enabled"],
            "is required and must be <boolean>"
        );
        assert_eq!(e.len(), 3);
    }

    #[test]
    fn arrays_of_enumerated_strings() {
        let spec = command("DeviceInformation").unwrap();
        let d = dict(vec![(
            "Queries",
            Value::Array(vec![s("DeviceName"), s("DeviceNmae"), Value::Integer(3.into())]),
        )]);
        let e = validate_command(spec, &d, "Command");
        assert!(
            e["Command.Queries[1]"].starts_with("is \"DeviceNmae\", which is not one of"),
            "{e:?}"
        );
        assert!(e["Command.Queries[1]"].contains("more"), "long lists are cut: {e:?}");
        assert_eq!(e["Command.Queries[2]"], "must be <string> but is <integer>");
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn settings_elements_are_told_apart_by_item() {
        let spec = command("Settings").unwrap();
        let ok = dict(vec![(
            "Settings",
            Value::Array(vec![
                Value::Dictionary(dict(vec![("Item", s("DeviceName")), ("DeviceName", s("Lab 1"))])),
                Value::Dictionary(dict(vec![("Item", s("Bluetooth")), ("Enabled", Value::Boolean(false))])),
                Value::Dictionary(dict(vec![
                    ("Item", s("ApplicationConfiguration")),
                    ("Identifier", s("com.example.app")),
                    (
                        "Configuration",
                        Value::Dictionary(dict(vec![("anything", Value::Integer(1.into()))])),
                    ),
                ])),
            ]),
        )]);
        assert!(validate_command(spec, &ok, "Command").is_empty());

        let bad = dict(vec![(
            "Settings",
            Value::Array(vec![
                Value::Dictionary(dict(vec![("Item", s("DeviceName"))])),
                Value::Dictionary(dict(vec![("Item", s("Brightness"))])),
                Value::Dictionary(dict(vec![("DeviceName", s("x"))])),
                s("DeviceName"),
                Value::Dictionary(dict(vec![
                    ("Item", s("PasscodeLockGracePeriod")),
                    ("PasscodeLockGracePeriod", Value::Integer(5.into())),
                ])),
            ]),
        )]);
        let e = validate_command(spec, &bad, "Command");
        assert_eq!(e["Command.Settings[0].DeviceName"], "is required and must be <string>");
        assert!(
            e["Command.Settings[1].Item"].starts_with("is \"Brightness\", which is not one Apple defines"),
            "{e:?}"
        );
        assert!(
            e["Command.Settings[2].Item"].starts_with("is required and names the kind"),
            "{e:?}"
        );
        assert!(e["Command.Settings[3]"].contains("<dictionary>"), "{e:?}");
        assert!(
            e["Command.Settings[4].PasscodeLockGracePeriod"].contains("0, 60, 300, 900, 3600, 14400"),
            "{e:?}"
        );
        assert_eq!(e.len(), 5, "{e:?}");
    }

    #[test]
    fn reals_take_integers_and_value_types_round_trip() {
        assert!(ValueType::Real.accepts(&Value::Integer(3.into())));
        assert!(!ValueType::Integer.accepts(&Value::Real(3.0)));
        for t in [
            "<string>",
            "<integer>",
            "<real>",
            "<boolean>",
            "<date>",
            "<data>",
            "<array>",
            "<dictionary>",
            "<any>",
        ] {
            assert_eq!(ValueType::from_apple_name(t).map(ValueType::apple_name), Some(t));
        }
    }
}
