//! Tenants.

use agentic_platform::error::Result;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::write_error;
use crate::model::{NewTenant, TenantRow};
use crate::schema::tenants;

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
