//! Validation of the user service's requests; every error names its field.

use agentic_platform::error::{Error, Result};
use agentic_platform::validate::{self, Violations};
use agentic_proto::user::v1 as pb;

use crate::model::{role_name, status_name};

pub(crate) const MAX_NAME_LEN: usize = 200;
pub(crate) const MAX_EMAIL_LEN: usize = 254;
pub(crate) const MIN_PASSWORD_LEN: usize = 8;
pub(crate) const MAX_PASSWORD_LEN: usize = 256;
pub(crate) const MAX_BATCH: usize = 1000;

/// A syntactically valid address, lowercased: `local@domain.tld`.
pub(crate) fn email(field: &str, value: &str) -> Result<String> {
    let email = value.trim().to_lowercase();
    if email.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    validate::visible(field, &email)?;
    let invalid = || Error::invalid(field, "is not an email address");
    if email.len() > MAX_EMAIL_LEN {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_EMAIL_LEN} characters"),
        ));
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '@' | '<' | '>' | '(' | ')' | ',' | ';' | ':' | '"' | '[' | ']' | '\\'
                )
        });
    if domain_ok && local_ok {
        Ok(email)
    } else {
        Err(invalid())
    }
}

/// An optional username: empty means none.
pub(crate) fn username(field: &str, value: &str) -> Result<Option<String>> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    validate::identifier(field, &value.trim().to_lowercase(), 3, 64, &['.', '_', '-']).map(Some)
}

pub(crate) fn display_name(field: &str, value: &str) -> Result<String> {
    validate::text(field, value, 1, MAX_NAME_LEN)
}

/// An optional password: empty means the user cannot sign in with one.
pub(crate) fn password(field: &str, value: &str) -> Result<Option<String>> {
    if value.is_empty() {
        return Ok(None);
    }
    let chars = value.chars().count();
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&chars) {
        return Err(Error::invalid(
            field,
            format!("must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"),
        ));
    }
    Ok(Some(value.to_owned()))
}

/// A role; unspecified means `default`.
pub(crate) fn role(field: &str, value: i32, default: Option<&'static str>) -> Result<&'static str> {
    let role =
        pb::Role::try_from(value).map_err(|_| Error::invalid(field, "is not a known role"))?;
    role_name(role)
        .or(default)
        .ok_or_else(|| Error::invalid(field, "is required"))
}

/// A status; unspecified means `default`.
pub(crate) fn status(
    field: &str,
    value: i32,
    default: Option<&'static str>,
) -> Result<&'static str> {
    let status = pb::UserStatus::try_from(value)
        .map_err(|_| Error::invalid(field, "is not a known status"))?;
    status_name(status)
        .or(default)
        .ok_or_else(|| Error::invalid(field, "is required"))
}

/// A validated CreateUserRequest.
#[derive(Debug)]
pub(crate) struct NewUserInput {
    pub(crate) email: String,
    pub(crate) username: Option<String>,
    pub(crate) display_name: String,
    pub(crate) role: &'static str,
    pub(crate) password: Option<String>,
}

pub(crate) fn new_user(request: &pb::CreateUserRequest) -> Result<NewUserInput, Violations> {
    let mut violations = Violations::new();
    let email = violations.check(email("email", &request.email));
    let username = violations.check(username("username", &request.username));
    let display_name = violations.check(display_name("display_name", &request.display_name));
    let role = violations.check(role("role", request.role, Some("member")));
    let password = violations.check(password("password", &request.password));
    match (email, username, display_name, role, password) {
        (Some(email), Some(username), Some(display_name), Some(role), Some(password)) => {
            Ok(NewUserInput {
                email,
                username,
                display_name,
                role,
                password,
            })
        }
        _ => Err(violations),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            email("email", " Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@exa mple.com",
            "ada@@example.com",
            "ada@-x.com",
        ] {
            assert!(email("email", bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(email("email", &format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn create_request_reports_every_bad_field() {
        let request = pb::CreateUserRequest {
            email: "nope".into(),
            username: "X".into(),
            display_name: "".into(),
            role: 42,
            password: "short".into(),
        };
        let violations = new_user(&request).unwrap_err();
        let Err(Error::InvalidArgument(list)) = violations.into_result() else {
            panic!("expected violations");
        };
        let fields: Vec<_> = list.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["email", "username", "display_name", "role", "password"]
        );
    }

    #[test]
    fn role_defaults_to_member() {
        assert_eq!(role("role", 0, Some("member")).unwrap(), "member");
        assert_eq!(role("role", pb::Role::Admin as i32, None).unwrap(), "admin");
        assert!(role("role", 0, None).is_err());
    }
}
