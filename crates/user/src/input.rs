//! Validation of the user service's requests; every error names its field.

use agentic_platform::error::{Error, Result};
use agentic_platform::fieldmask::{self, FieldPaths};
use agentic_platform::idempotency;
use agentic_platform::paging;
use agentic_platform::validate::{self, Violations};
use agentic_proto::user::v1 as pb;
use chrono::Utc;
use uuid::Uuid;

use crate::model::{
    TenantChanges, USER_FIELDS, UserChanges, UserFilter, role_name, status_name, tenant_status_name,
};

pub(crate) const MAX_NAME_LEN: usize = 200;
pub(crate) const MAX_EMAIL_LEN: usize = 254;
pub(crate) const MIN_PASSWORD_LEN: usize = 8;
pub(crate) const MAX_PASSWORD_LEN: usize = 256;
pub(crate) const MAX_BATCH: usize = 1000;
/// Paths an `update_mask` may name.
const UPDATABLE_FIELDS: &[&str] = &["email", "username", "display_name", "role", "status"];

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

/// A role, if one is given (unspecified is `None`).
fn optional_role(field: &str, value: i32) -> Result<Option<&'static str>> {
    validate::enum_name(field, value, "role", role_name)
}

/// A role; unspecified means `default`.
pub(crate) fn role(field: &str, value: i32, default: Option<pb::Role>) -> Result<&'static str> {
    optional_role(field, value)?
        .or_else(|| default.and_then(role_name))
        .ok_or_else(|| Error::invalid(field, "is required"))
}

/// A status, if one is given (unspecified is `None`).
fn optional_status(field: &str, value: i32) -> Result<Option<&'static str>> {
    validate::enum_name(field, value, "status", status_name)
}

/// A validated CreateTenantRequest.
#[derive(Debug)]
pub(crate) struct NewTenantInput {
    pub(crate) name: String,
    pub(crate) slug: String,
    pub(crate) request_id: Option<Uuid>,
}

pub(crate) fn new_tenant(request: &pb::CreateTenantRequest) -> Result<NewTenantInput> {
    let (name, slug, request_id) = validate::all((
        validate::text("name", &request.name, 1, MAX_NAME_LEN),
        validate::identifier("slug", &request.slug, 3, 63, &['-']),
        idempotency::request_id(&request.request_id),
    ))?;
    Ok(NewTenantInput {
        name,
        slug,
        request_id,
    })
}

/// Paths a tenant's `update_mask` may name.
const UPDATABLE_TENANT_FIELDS: &[&str] = &["name", "status"];

fn optional_tenant_status(field: &str, value: i32) -> Result<Option<&'static str>> {
    validate::enum_name(field, value, "status", tenant_status_name)
}

/// A validated UpdateTenantRequest: the tenant's id and the columns its mask names.
#[derive(Debug)]
pub(crate) struct TenantUpdate {
    pub(crate) id: Uuid,
    pub(crate) changes: TenantChanges,
}

pub(crate) fn tenant_update(request: &pb::UpdateTenantRequest) -> Result<TenantUpdate> {
    let tenant = request
        .tenant
        .as_ref()
        .ok_or_else(|| Error::invalid("tenant", "is required"))?;
    let (id, mask) = validate::all((
        validate::id("tenant.id", &tenant.id),
        fieldmask::update_mask(request.update_mask.as_ref(), UPDATABLE_TENANT_FIELDS),
    ))?;
    let mut violations = Violations::new();
    let mut changes = TenantChanges {
        updated_at: Some(Utc::now()),
        ..TenantChanges::default()
    };
    if mask.includes("name") {
        changes.name =
            violations.check(validate::text("tenant.name", &tenant.name, 1, MAX_NAME_LEN));
    }
    if mask.includes("status") {
        changes.status = violations
            .check(validate::required(
                "tenant.status",
                optional_tenant_status("tenant.status", tenant.status),
            ))
            .map(str::to_owned);
    }
    violations.into_result()?;
    Ok(TenantUpdate { id, changes })
}

/// A validated ListTenantsRequest: the page size and the status filter.
pub(crate) fn tenant_listing(
    request: &pb::ListTenantsRequest,
) -> Result<(i64, Option<&'static str>)> {
    validate::all((
        paging::page_size(request.page_size),
        optional_tenant_status("status", request.status),
    ))
}

/// A validated GetPrincipalRequest: a tenant and, optionally, one of its users.
pub(crate) fn principal(request: &pb::GetPrincipalRequest) -> Result<(Uuid, Option<Uuid>)> {
    let user = if request.user_id.is_empty() {
        Ok(None)
    } else {
        validate::id("user_id", &request.user_id).map(Some)
    };
    validate::all((validate::id("tenant_id", &request.tenant_id), user))
}

/// A validated CreateUserRequest.
#[derive(Debug)]
pub(crate) struct NewUserInput {
    pub(crate) email: String,
    pub(crate) username: Option<String>,
    pub(crate) display_name: String,
    pub(crate) role: &'static str,
    pub(crate) password: Option<String>,
    pub(crate) request_id: Option<Uuid>,
}

pub(crate) fn new_user(request: &pb::CreateUserRequest) -> Result<NewUserInput> {
    let (email, username, display_name, role, password, request_id) = validate::all((
        email("email", &request.email),
        username("username", &request.username),
        display_name("display_name", &request.display_name),
        role("role", request.role, Some(pb::Role::Member)),
        password("password", &request.password),
        idempotency::request_id(&request.request_id),
    ))?;
    Ok(NewUserInput {
        email,
        username,
        display_name,
        role,
        password,
        request_id,
    })
}

/// A validated BatchCreateUsersRequest: 1 to [`MAX_BATCH`] users, every bad field of
/// every user reported as `requests[i].<field>`.
pub(crate) fn new_users(
    request: &pb::BatchCreateUsersRequest,
) -> Result<(Vec<NewUserInput>, Option<Uuid>)> {
    let request_id = idempotency::request_id(&request.request_id)?;
    let requests = &request.requests;
    if requests.is_empty() || requests.len() > MAX_BATCH {
        return Err(Error::invalid(
            "requests",
            format!("must hold 1 to {MAX_BATCH} users"),
        ));
    }
    let mut violations = Violations::new();
    let mut inputs = Vec::with_capacity(requests.len());
    for (index, item) in requests.iter().enumerate() {
        let mut item_violations = Violations::new();
        if let Some(valid) = item_violations.check(new_user(item)) {
            inputs.push(valid);
        }
        if !item.request_id.is_empty() {
            item_violations.add(
                "request_id",
                "must be empty in a batch (the batch's counts)",
            );
        }
        violations.extend(item_violations.nest(&format!("requests[{index}].")));
    }
    violations.into_result()?;
    Ok((inputs, request_id))
}

/// A validated UpdateUserRequest: the user's id and the columns its `update_mask` names.
#[derive(Debug)]
pub(crate) struct UserUpdate {
    pub(crate) id: Uuid,
    pub(crate) changes: UserChanges,
}

pub(crate) fn user_update(request: &pb::UpdateUserRequest) -> Result<UserUpdate> {
    let user = request
        .user
        .as_ref()
        .ok_or_else(|| Error::invalid("user", "is required"))?;
    let (id, mask) = validate::all((
        validate::id("user.id", &user.id),
        fieldmask::update_mask(request.update_mask.as_ref(), UPDATABLE_FIELDS),
    ))?;
    // Only the fields the mask names are checked and written; the rest stay `None`.
    let mut violations = Violations::new();
    let mut changes = UserChanges {
        updated_at: Some(Utc::now()),
        ..UserChanges::default()
    };
    if mask.includes("email") {
        changes.email = violations.check(email("user.email", &user.email));
    }
    if mask.includes("username") {
        changes.username = violations.check(username("user.username", &user.username));
    }
    if mask.includes("display_name") {
        changes.display_name =
            violations.check(display_name("user.display_name", &user.display_name));
    }
    if mask.includes("role") {
        changes.role = violations
            .check(role("user.role", user.role, None))
            .map(str::to_owned);
    }
    if mask.includes("status") {
        changes.status = violations
            .check(validate::required(
                "user.status",
                optional_status("user.status", user.status),
            ))
            .map(str::to_owned);
    }
    violations.into_result()?;
    Ok(UserUpdate { id, changes })
}

/// A validated GetUserRequest.
pub(crate) fn user_read(request: &pb::GetUserRequest) -> Result<(Uuid, FieldPaths)> {
    validate::all((
        validate::id("id", &request.id),
        FieldPaths::parse(request.read_mask.as_ref(), USER_FIELDS, "read_mask"),
    ))
}

/// What a LookupUserRequest looks for, normalised as stored.
#[derive(Debug)]
pub(crate) enum Lookup {
    Email(String),
    Username(String),
}

pub(crate) fn lookup(request: &pb::LookupUserRequest) -> Result<Lookup> {
    match &request.key {
        Some(pb::lookup_user_request::Key::Email(value)) => {
            email("email", value).map(Lookup::Email)
        }
        Some(pb::lookup_user_request::Key::Username(value)) => username("username", value)?
            .map(Lookup::Username)
            .ok_or_else(|| Error::invalid("username", "is required")),
        None => Err(Error::invalid("key", "set email or username")),
    }
}

/// A validated ListUsersRequest.
#[derive(Debug)]
pub(crate) struct UserListing {
    pub(crate) page_size: i64,
    pub(crate) filter: UserFilter,
    pub(crate) mask: FieldPaths,
}

pub(crate) fn user_listing(request: &pb::ListUsersRequest) -> Result<UserListing> {
    let (page_size, status, role, mask) = validate::all((
        paging::page_size(request.page_size),
        optional_status("status", request.status),
        optional_role("role", request.role),
        FieldPaths::parse(request.read_mask.as_ref(), USER_FIELDS, "read_mask"),
    ))?;
    Ok(UserListing {
        page_size,
        filter: UserFilter { status, role },
        mask,
    })
}

/// A sign-in attempt, normalised as stored.
#[derive(Debug)]
pub(crate) struct Credentials {
    pub(crate) tenant_slug: String,
    pub(crate) email: String,
    pub(crate) password: String,
}

/// Only presence and plain text are checked: a malformed email or slug is as good as an
/// unknown one, and answers the same, so callers cannot probe which part was wrong.
pub(crate) fn credentials(request: pb::AuthenticateRequest) -> Result<Credentials> {
    let required = |field: &str, value: &str| -> Result<()> {
        if value.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        Ok(())
    };
    validate::all((
        required("tenant_slug", &request.tenant_slug)
            .and_then(|()| validate::visible("tenant_slug", &request.tenant_slug)),
        required("email", &request.email).and_then(|()| validate::visible("email", &request.email)),
        required("password", &request.password),
    ))?;
    Ok(Credentials {
        tenant_slug: request.tenant_slug.trim().to_owned(),
        email: request.email.trim().to_lowercase(),
        password: request.password,
    })
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
            request_id: String::new(),
        };
        let Err(Error::InvalidArgument(list)) = new_user(&request) else {
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
        assert_eq!(role("role", 0, Some(pb::Role::Member)).unwrap(), "member");
        assert_eq!(role("role", pb::Role::Admin as i32, None).unwrap(), "admin");
        assert!(role("role", 0, None).is_err());
    }
}
