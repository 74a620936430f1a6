//! Rows, domain enums, and their mapping to and from protobuf.

use agentic_platform::time::to_timestamp;
use agentic_proto::user::v1 as pb;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::{tenants, users};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tenants, check_for_backend(diesel::pg::Pg))]
pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
    pub status: String,
    pub updated_at: DateTime<Utc>,
}

impl TenantRow {
    /// Whether its users may call.
    pub fn is_active(&self) -> bool {
        self.status == ACTIVE
    }
}

/// The columns a tenant update writes; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = tenants)]
pub struct TenantChanges {
    pub name: Option<String>,
    pub status: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

pub fn tenant_status_name(status: pb::TenantStatus) -> Option<&'static str> {
    match status {
        pb::TenantStatus::Active => Some(ACTIVE),
        pb::TenantStatus::Suspended => Some("suspended"),
        pb::TenantStatus::Unspecified => None,
    }
}

fn tenant_status_from_name(name: &str) -> pb::TenantStatus {
    match name {
        ACTIVE => pb::TenantStatus::Active,
        "suspended" => pb::TenantStatus::Suspended,
        _ => pb::TenantStatus::Unspecified,
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = tenants)]
pub struct NewTenant {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
}

/// A user without its password hash, which only sign-in ever reads.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub username: Option<String>,
    pub display_name: String,
    pub role: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub username: Option<String>,
    pub display_name: String,
    pub role: String,
    pub status: String,
    pub password_hash: Option<String>,
}

/// The columns an update writes; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub email: Option<String>,
    pub username: Option<Option<String>>,
    pub display_name: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Filters of a user listing.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub status: Option<&'static str>,
    pub role: Option<&'static str>,
}

impl UserFilter {
    /// What a page token is bound to, so it cannot be replayed with other filters.
    pub fn fingerprint(&self, tenant: Uuid) -> String {
        format!(
            "{tenant}|{}|{}",
            self.status.unwrap_or(""),
            self.role.unwrap_or("")
        )
    }
}

pub fn role_name(role: pb::Role) -> Option<&'static str> {
    match role {
        pb::Role::Admin => Some("admin"),
        pb::Role::Member => Some("member"),
        pb::Role::Viewer => Some("viewer"),
        pb::Role::Unspecified => None,
    }
}

/// The stored status of a user who may sign in, and every new user's.
pub const ACTIVE: &str = "active";

impl UserRow {
    /// Whether the user may sign in.
    pub fn is_active(&self) -> bool {
        self.status == ACTIVE
    }
}

pub fn status_name(status: pb::UserStatus) -> Option<&'static str> {
    match status {
        pb::UserStatus::Active => Some(ACTIVE),
        pb::UserStatus::Inactive => Some("inactive"),
        pb::UserStatus::Suspended => Some("suspended"),
        pb::UserStatus::Unspecified => None,
    }
}

fn role_from_name(name: &str) -> pb::Role {
    match name {
        "admin" => pb::Role::Admin,
        "member" => pb::Role::Member,
        "viewer" => pb::Role::Viewer,
        _ => pb::Role::Unspecified,
    }
}

fn status_from_name(name: &str) -> pb::UserStatus {
    match name {
        ACTIVE => pb::UserStatus::Active,
        "inactive" => pb::UserStatus::Inactive,
        "suspended" => pb::UserStatus::Suspended,
        _ => pb::UserStatus::Unspecified,
    }
}

impl From<UserRow> for pb::User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id.to_string(),
            tenant_id: row.tenant_id.to_string(),
            email: row.email,
            username: row.username.unwrap_or_default(),
            display_name: row.display_name,
            role: role_from_name(&row.role) as i32,
            status: status_from_name(&row.status) as i32,
            create_time: Some(to_timestamp(row.created_at)),
            update_time: Some(to_timestamp(row.updated_at)),
        }
    }
}

impl From<TenantRow> for pb::Tenant {
    fn from(row: TenantRow) -> Self {
        Self {
            id: row.id.to_string(),
            name: row.name,
            slug: row.slug,
            create_time: Some(to_timestamp(row.created_at)),
            status: tenant_status_from_name(&row.status) as i32,
            update_time: Some(to_timestamp(row.updated_at)),
        }
    }
}

agentic_platform::read_mask!(
    pub fn apply_read_mask(pb::User),
    USER_FIELDS = [
        id,
        tenant_id,
        email,
        username,
        display_name,
        role,
        status,
        create_time,
        update_time,
    ]
);
