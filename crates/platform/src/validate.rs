//! Request validation that names the offending field, collecting every violation so a
//! client fixes its request in one round.
//!
//! The idiom every service follows (the shape of tonic's richer-error example): an
//! `input.rs` turns a request into a typed input with [`all`], which checks every field,
//! returns every violation if any field is bad, and only then hands out the values:
//!
//! ```ignore
//! let (name, slug) = validate::all((
//!     validate::text("agent.name", &agent.name, 1, 200),
//!     validate::identifier("agent.slug", &agent.slug, 3, 63, &['-']),
//! ))?;
//! Ok(AgentInput { name, slug })
//! ```

use uuid::Uuid;

use crate::error::{Error, FieldViolation, Result};

/// Violations collected over a request, turned into one `INVALID_ARGUMENT`.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is bad, and why.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Records `result`'s violations, if any, and passes its value on.
    pub fn check<T>(&mut self, result: Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(Error::InvalidArgument(violations)) => {
                self.0.extend(violations);
                None
            }
            Err(other) => {
                self.add("request", other.to_string());
                None
            }
        }
    }

    /// Prefixes every field recorded so far, e.g. "requests[3].".
    pub fn nest(mut self, prefix: &str) -> Self {
        for violation in &mut self.0 {
            violation.field = format!("{prefix}{}", violation.field);
        }
        self
    }

    /// Records every violation of `other`.
    pub fn extend(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was recorded, else one `INVALID_ARGUMENT` with every violation.
    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }
}

impl From<Violations> for Error {
    fn from(violations: Violations) -> Self {
        Error::InvalidArgument(violations.0)
    }
}

/// The checks of several fields, as a tuple of their results (see [`all`]).
pub trait Checks {
    /// The checked values, in the same order.
    type Values;
    /// Every value, or every violation of every field.
    fn all(self) -> Result<Self::Values>;
}

/// Every value of `checks` (a tuple of field results), or one `INVALID_ARGUMENT` with
/// every violation among them: no value is used before every field was checked.
pub fn all<C: Checks>(checks: C) -> Result<C::Values> {
    checks.all()
}

macro_rules! checks_for_tuples {
    ($(($($value:ident),+)),+ $(,)?) => {$(
        impl<$($value),+> Checks for ($(Result<$value>,)+) {
            type Values = ($($value,)+);

            #[allow(non_snake_case)]
            fn all(self) -> Result<Self::Values> {
                match self {
                    ($(Ok($value),)+) => Ok(($($value,)+)),
                    ($($value,)+) => {
                        let mut violations = Violations::new();
                        $(violations.check($value);)+
                        Err(violations.into())
                    }
                }
            }
        }
    )+};
}

checks_for_tuples!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
    (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J),
    (A, B, C, D, E, F, G, H, I, J, K),
    (A, B, C, D, E, F, G, H, I, J, K, L),
    (A, B, C, D, E, F, G, H, I, J, K, L, M),
    (A, B, C, D, E, F, G, H, I, J, K, L, M, N),
);

/// A resource id: a UUID in its usual text form.
pub fn id(field: &str, value: &str) -> Result<Uuid> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    Uuid::try_parse(value).map_err(|_| Error::invalid(field, "is not a valid UUID"))
}

/// A protobuf enum field, given as its number, as the name a service stores: `None` for
/// the unspecified value (`name_of` maps it to `None`), `INVALID_ARGUMENT` naming `field`
/// for a number the enum does not have ("is not a known `what`").
pub fn enum_name<E: TryFrom<i32>>(
    field: &str,
    value: i32,
    what: &str,
    name_of: fn(E) -> Option<&'static str>,
) -> Result<Option<&'static str>> {
    let known =
        E::try_from(value).map_err(|_| Error::invalid(field, format!("is not a known {what}")))?;
    Ok(name_of(known))
}

/// The value of an optional field that must be set: `INVALID_ARGUMENT` ("is required")
/// naming `field` when it is not.
pub fn required<T>(field: &str, value: Result<Option<T>>) -> Result<T> {
    value?.ok_or_else(|| Error::invalid(field, "is required"))
}

/// Resource ids, each a UUID (a bad one is named as `field[i]`), duplicates dropped, in
/// the order given.
pub fn distinct_ids(field: &str, values: &[String]) -> Result<Vec<Uuid>> {
    let mut violations = Violations::new();
    let mut ids = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        if let Some(id) = violations.check(id(&format!("{field}[{index}]"), value))
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    violations.into_result()?;
    Ok(ids)
}

/// Fails if `value` holds a control character (NUL included): PostgreSQL refuses NUL in
/// text, and nothing a person types needs the others.
pub fn plain(field: &str, value: &str) -> Result<()> {
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Bidirectional overrides and zero-width characters: they make two different names
/// look the same.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' // zero-width space, joiners, LRM/RLM
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{FEFF}' // zero-width no-break space
            | '\u{00AD}' // soft hyphen
    )
}

/// Fails if `value` holds a control character, a bidi override or a zero-width
/// character: for names that identify something (emails, usernames, slugs).
pub fn visible(field: &str, value: &str) -> Result<()> {
    plain(field, value)?;
    if value.chars().any(is_invisible) {
        return Err(Error::invalid(
            field,
            "must not contain invisible or bidirectional control characters",
        ));
    }
    Ok(())
}

/// Text of `min..=max` characters (after trimming), returned trimmed.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String> {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars == 0 && min > 0 {
        return Err(Error::invalid(field, "is required"));
    }
    if chars < min {
        return Err(Error::invalid(
            field,
            format!("must be at least {min} characters"),
        ));
    }
    if chars > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

/// Multi-line text (prompts, templates) of at most `max` characters, kept as written:
/// line breaks and tabs are allowed, other control characters (NUL included) are not.
pub fn multiline(field: &str, value: &str, max: usize) -> Result<String> {
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Error::invalid(
            field,
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(value.to_owned())
}

/// A lowercase identifier: letters, digits and `allowed_punctuation`, starting with a
/// letter or digit.
pub fn identifier(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    allowed_punctuation: &[char],
) -> Result<String> {
    let value = text(field, value, min, max)?;
    let valid_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || allowed_punctuation.contains(&c);
    let starts_well = value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !value.chars().all(valid_char) || !starts_well {
        let punctuation: String = allowed_punctuation.iter().collect();
        return Err(Error::invalid(
            field,
            format!(
                "must be lowercase letters, digits or {punctuation:?}, starting with a letter or digit"
            ),
        ));
    }
    Ok(value)
}

/// The most stop sequences an answer may have.
pub const MAX_STOP_SEQUENCES: usize = 4;
/// A stop sequence's most characters.
pub const MAX_STOP_LEN: usize = 100;

/// An answer's settings that take the place of an agent's own (`GenerationOverrides`,
/// under `field`): max_tokens 1 to 1,000,000, temperature 0 to 2, up to
/// [`MAX_STOP_SEQUENCES`] stop sequences of 1 to [`MAX_STOP_LEN`] characters. Checked
/// where the request comes in, so a bad value is refused before anything is stored.
pub fn generation_overrides(
    field: &str,
    overrides: &agentic_proto::agent::v1::GenerationOverrides,
) -> Result<()> {
    let (max_tokens, temperature, stop) =
        (overrides.max_tokens, overrides.temperature, &overrides.stop);
    let mut violations = Violations::new();
    if let Some(max_tokens) = max_tokens.filter(|n| !(1..=1_000_000).contains(n)) {
        violations.add(
            format!("{field}.max_tokens"),
            format!("must be from 1 to 1000000, not {max_tokens}"),
        );
    }
    if temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        violations.add(format!("{field}.temperature"), "must be from 0 to 2");
    }
    if stop.len() > MAX_STOP_SEQUENCES {
        violations.add(
            format!("{field}.stop"),
            format!("must hold at most {MAX_STOP_SEQUENCES} sequences"),
        );
    }
    for (index, sequence) in stop.iter().enumerate() {
        let length = sequence.chars().count();
        if length == 0 || length > MAX_STOP_LEN {
            violations.add(
                format!("{field}.stop[{index}]"),
                format!("must be 1 to {MAX_STOP_LEN} characters"),
            );
        }
    }
    violations.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_uuids() {
        assert!(id("id", &Uuid::now_v7().to_string()).is_ok());
        for bad in ["", "42", "not-a-uuid"] {
            let error = id("user.id", bad).unwrap_err();
            assert!(matches!(&error, Error::InvalidArgument(v) if v[0].field == "user.id"));
        }
    }

    #[test]
    fn multiline_text_keeps_line_breaks_and_refuses_nul() {
        assert_eq!(multiline("p", "a\n\tb", 10).unwrap(), "a\n\tb");
        assert!(multiline("p", "a\0b", 10).is_err());
        assert!(multiline("p", &"x".repeat(11), 10).is_err());
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text("name", "  Ada  ", 1, 10).unwrap(), "Ada");
        assert!(text("name", "   ", 1, 10).is_err());
        assert!(text("name", &"x".repeat(11), 1, 10).is_err());
        assert!(text("name", "a\u{0}b", 1, 10).is_err());
        assert_eq!(text("name", "", 0, 10).unwrap(), "");
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        assert!(plain("email", "a\u{0}b").is_err());
        assert!(plain("email", "ok@example.com").is_ok());
        for sneaky in ["ad\u{202E}min", "a\u{200B}b", "\u{FEFF}x", "x\u{2066}y"] {
            let error = visible("email", sneaky).unwrap_err();
            assert!(matches!(&error, Error::InvalidArgument(v) if v[0].field == "email"));
        }
        assert!(visible("email", "zoë@example.com").is_ok());
    }

    #[test]
    fn identifiers_are_lowercase() {
        assert_eq!(
            identifier("slug", "acme-1", 3, 63, &['-']).unwrap(),
            "acme-1"
        );
        assert!(identifier("slug", "Acme", 3, 63, &['-']).is_err());
        assert!(identifier("slug", "-acme", 3, 63, &['-']).is_err());
        assert!(identifier("slug", "ac me", 3, 63, &['-']).is_err());
    }

    #[test]
    fn all_hands_out_values_only_when_every_field_passed() {
        let (a, b) = all((text("a", " x ", 1, 5), id("b", &Uuid::nil().to_string()))).unwrap();
        assert_eq!((a.as_str(), b), ("x", Uuid::nil()));

        let error = all((text("a", "", 1, 5), Ok(1), id("c", "nope"))).unwrap_err();
        let Error::InvalidArgument(violations) = error else {
            panic!("expected INVALID_ARGUMENT, got {error:?}");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["a", "c"]);
    }

    #[test]
    fn violations_collect_and_nest() {
        let mut all = Violations::new();
        let mut one = Violations::new();
        one.check(id("id", "x"));
        all.extend(one.nest("requests[2]."));
        let error = all.into_result().unwrap_err();
        assert!(matches!(&error, Error::InvalidArgument(v) if v[0].field == "requests[2].id"));
    }
}
