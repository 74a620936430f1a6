//! Tenants.

use agentic_platform::db::SharedConn;
use agentic_platform::error::Result;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::write_error;
use crate::model::{NewTenant, TenantChanges, TenantRow, UserRow};
use crate::schema::{tenants, users};

pub async fn insert_tenant(conn: &mut AsyncPgConnection, tenant: &NewTenant) -> Result<TenantRow> {
    diesel::insert_into(tenants::table)
        .values(tenant)
        .returning(TenantRow::as_returning())
        .get_result(conn)
        .await
        .map_err(write_error)
}

pub async fn find_tenant(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Option<TenantRow>> {
    Ok(tenants::table
        .find(id)
        .select(TenantRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn find_tenant_by_slug(
    conn: &mut AsyncPgConnection,
    slug: &str,
) -> Result<Option<TenantRow>> {
    Ok(tenants::table
        .filter(tenants::slug.eq(slug))
        .select(TenantRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Applies `changes`; returns the row after, or `None` if there is no such tenant.
pub async fn update_tenant(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &TenantChanges,
) -> Result<Option<TenantRow>> {
    diesel::update(tenants::table.find(id))
        .set(changes)
        .returning(TenantRow::as_returning())
        .get_result(conn)
        .await
        .optional()
        .map_err(write_error)
}

/// One page of tenants by id, after `after`, optionally with one status, in one query.
pub async fn list_tenants(
    conn: &mut AsyncPgConnection,
    status: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<TenantRow>> {
    let mut query = tenants::table
        .select(TenantRow::as_select())
        .order(tenants::id)
        .limit(limit)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(tenants::status.eq(status.to_owned()));
    }
    if let Some(after) = after {
        query = query.filter(tenants::id.gt(after));
    }
    Ok(query.load(conn).await?)
}

/// A tenant and, when `user` is given, that user of the tenant, in one query: what a
/// principal check needs. `None` when there is no such tenant.
pub async fn find_principal(
    conn: &mut SharedConn<'_>,
    tenant: Uuid,
    user: Option<Uuid>,
) -> Result<Option<(TenantRow, Option<UserRow>)>> {
    // The nil id is no user's, so a token of no user joins nothing.
    let user = user.unwrap_or(Uuid::nil());
    Ok(tenants::table
        .left_join(users::table.on(users::tenant_id.eq(tenants::id).and(users::id.eq(user))))
        .filter(tenants::id.eq(tenant))
        .select((TenantRow::as_select(), Option::<UserRow>::as_select()))
        .first(conn)
        .await
        .optional()?)
}
