//! A person record and the rules its fields obey. No gRPC and no storage here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{DatabaseError, FieldError};

/// Longest id, in characters (all ASCII, so also bytes).
pub const MAX_ID_LEN: usize = 64;
/// Longest name, in characters.
pub const MAX_NAME_LEN: usize = 200;
/// Longest e-mail address, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Oldest accepted age, in years.
pub const MAX_AGE: u32 = 150;

/// A moment, in microseconds since the Unix epoch: the precision PostgreSQL keeps,
/// so both stores return exactly what they were given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Seconds and nanoseconds since the epoch, for `google.protobuf.Timestamp`.
    pub fn seconds_and_nanos(self) -> (i64, i32) {
        let seconds = self.0.div_euclid(1_000_000);
        // The remainder is below 1_000_000, so the nanoseconds fit in an i32.
        #[allow(clippy::cast_possible_truncation)]
        let nanos = (self.0.rem_euclid(1_000_000) * 1_000) as i32;
        (seconds, nanos)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        let micros = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
        };
        Self(micros)
    }
}

impl From<Timestamp> for SystemTime {
    fn from(time: Timestamp) -> Self {
        let magnitude = Duration::from_micros(time.0.unsigned_abs());
        if time.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

/// The fields a client writes: everything but the id and the bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonFields {
    /// Full name.
    pub name: String,
    /// E-mail address, if any.
    pub email: Option<String>,
    /// Age in years, if known.
    pub age: Option<u32>,
}

/// A stored person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The key, immutable.
    pub id: String,
    /// What the client wrote.
    pub fields: PersonFields,
    /// 1 on create, +1 on every write.
    pub version: u64,
    /// When the record was created.
    pub create_time: Timestamp,
    /// When the record was last written.
    pub update_time: Timestamp,
}

/// Checks an id: 1 to 64 ASCII letters, digits, '-', '_', '.' or ':'. `field` names
/// it in the error (`person.id`, `id`).
pub fn validate_id(field: &'static str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(FieldError::new(
            field,
            format!("longer than {MAX_ID_LEN} characters"),
        ));
    }
    if let Some(bad) = id.chars().find(|&c| !is_id_char(c)) {
        return Err(FieldError::new(
            field,
            format!("{bad:?} is not allowed (use letters, digits, '-', '_', '.', ':')"),
        ));
    }
    Ok(())
}

/// Whether `c` may appear in an id.
pub fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// Checks an id prefix for listing and watching: empty, or what could start an id.
pub fn validate_id_prefix(field: &'static str, prefix: &str) -> Result<(), FieldError> {
    if prefix.is_empty() {
        return Ok(());
    }
    validate_id(field, prefix)
}

/// The smallest string greater than every id starting with `prefix` (ids are
/// ASCII below '~'), for range scans; `None` for the empty prefix.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    let last = bytes.pop()?;
    bytes.push(last + 1);
    // Id characters are ASCII below 0x7F, so the successor is ASCII too.
    Some(bytes.into_iter().map(char::from).collect())
}

/// Checks a name: 1 to 200 characters, not blank, no control characters, and
/// nothing else that is not text for the people who will read it (line and
/// paragraph separators, bidirectional controls): a name is printed on other
/// users' screens and inside multi-line text answers.
pub fn validate_name(field: &'static str, name: &str) -> Result<(), FieldError> {
    if name.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(FieldError::new(
            field,
            format!("longer than {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    quartet_text::check_line(name).map_err(|refusal| FieldError::new(field, refusal.to_string()))
}

/// Checks an e-mail address: `local@domain`, a dot inside the domain, no spaces or
/// control characters, at most 254 characters. Deliberately simple: the only
/// reliable check of an address is a mail to it.
pub fn validate_email(field: &'static str, email: &str) -> Result<(), FieldError> {
    let invalid = || FieldError::new(field, "not an email address");
    if email.len() > MAX_EMAIL_LEN {
        return Err(FieldError::new(
            field,
            format!("longer than {MAX_EMAIL_LEN} characters"),
        ));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(invalid());
    }
    Ok(())
}

/// Checks an age: at most 150 years.
pub fn validate_age(field: &'static str, age: u32) -> Result<(), FieldError> {
    if age > MAX_AGE {
        return Err(FieldError::new(field, format!("{age} is above {MAX_AGE}")));
    }
    Ok(())
}

impl PersonFields {
    /// Checks every field, naming it under `person.`.
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("person.name", &self.name)?;
        if let Some(email) = &self.email {
            validate_email("person.email", email)?;
        }
        if let Some(age) = self.age {
            validate_age("person.age", age)?;
        }
        Ok(())
    }
}

/// A person as a client sends it for create or import: id and fields, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPerson {
    /// The key.
    pub id: String,
    /// The values.
    pub fields: PersonFields,
}

impl NewPerson {
    /// A new person whose id and fields are valid.
    pub fn new(id: String, fields: PersonFields) -> Result<Self, DatabaseError> {
        validate_id("person.id", &id)?;
        fields.validate()?;
        Ok(Self { id, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_ascii_with_a_few_separators() {
        assert!(validate_id("id", "12345678-Z").is_ok());
        assert!(validate_id("id", "es:dni.1_2").is_ok());
        assert_eq!(
            validate_id("id", "").unwrap_err().to_string(),
            "id: must not be empty"
        );
        assert!(validate_id("id", "with space").is_err());
        assert!(validate_id("id", "ñ").is_err());
        assert!(validate_id("id", &"a".repeat(65)).is_err());
        assert!(validate_id("id", &"a".repeat(64)).is_ok());
    }

    #[test]
    fn names_are_not_blank_and_have_no_control_characters() {
        assert!(validate_name("n", "José Ñúñez").is_ok());
        assert!(validate_name("n", "   ").is_err());
        assert!(validate_name("n", "a\nb").is_err());
        assert!(validate_name("n", "a\tb").is_err());
        assert!(validate_name("n", "a\u{2028}b").is_err());
        assert_eq!(
            validate_name("n", "\u{202e}anA").unwrap_err().to_string(),
            "n: contains a bidirectional control (U+202E) at character 1"
        );
        assert!(validate_name("n", &"é".repeat(200)).is_ok());
        assert!(validate_name("n", &"é".repeat(201)).is_err());
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        for good in ["ana@example.com", "a.b+c@sub.example.org"] {
            assert!(validate_email("e", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "a@b@c.com",
            "a@.com",
            "a@b..com",
        ] {
            assert_eq!(
                validate_email("person.email", bad).unwrap_err().to_string(),
                "person.email: not an email address",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ages_stop_at_150() {
        assert!(validate_age("a", 150).is_ok());
        assert!(validate_age("a", 151).is_err());
    }

    #[test]
    fn timestamps_round_trip_through_system_time_at_microsecond_precision() {
        let now = Timestamp::now();
        assert_eq!(Timestamp::from(SystemTime::from(now)), now);
        let before_epoch = Timestamp(-1_500_000);
        assert_eq!(
            Timestamp::from(SystemTime::from(before_epoch)),
            before_epoch
        );
        assert_eq!(before_epoch.seconds_and_nanos(), (-2, 500_000_000));
    }

    proptest! {
        #[test]
        fn every_id_with_the_prefix_sorts_below_its_upper_bound(
            prefix in "[A-Za-z0-9._:-]{1,8}",
            rest in "[A-Za-z0-9._:-]{0,8}",
        ) {
            let upper = prefix_upper_bound(&prefix).unwrap();
            let id = format!("{prefix}{rest}");
            prop_assert!(id.as_str() >= prefix.as_str());
            prop_assert!(id < upper);
        }
    }
}
