//! Users; every query filters by tenant.

use agentic_platform::db::SharedConn;
use agentic_platform::error::{Error, Result};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{INSERT_CHUNK, write_error};
use crate::model::{NewUser, UserChanges, UserFilter, UserRow};
use crate::schema::users;

pub async fn insert_user(conn: &mut AsyncPgConnection, user: &NewUser) -> Result<UserRow> {
    diesel::insert_into(users::table)
        .values(user)
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
        .map_err(write_error)
}

/// Inserts all `new_users` in one transaction, one INSERT per chunk: all or none.
pub async fn insert_users(
    conn: &mut AsyncPgConnection,
    new_users: &[NewUser],
) -> Result<Vec<UserRow>> {
    conn.transaction::<_, Error, _>(async |conn| {
        let mut created = Vec::with_capacity(new_users.len());
        for chunk in new_users.chunks(INSERT_CHUNK) {
            let rows = diesel::insert_into(users::table)
                .values(chunk)
                .returning(UserRow::as_returning())
                .get_results(conn)
                .await
                .map_err(write_error)?;
            created.extend(rows);
        }
        Ok(created)
    })
    .await
}

pub async fn find_user(
    conn: &mut SharedConn<'_>,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<UserRow>> {
    Ok(users::table
        .filter(users::tenant_id.eq(tenant).and(users::id.eq(id)))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A user by email or by username.
#[derive(Debug, Clone, Copy)]
pub enum UserKey<'a> {
    Email(&'a str),
    Username(&'a str),
}

pub async fn find_user_by(
    conn: &mut SharedConn<'_>,
    tenant: Uuid,
    key: UserKey<'_>,
) -> Result<Option<UserRow>> {
    let query = users::table
        .filter(users::tenant_id.eq(tenant))
        .select(UserRow::as_select())
        .into_boxed();
    let query = match key {
        UserKey::Email(email) => query.filter(users::email.eq(email)),
        UserKey::Username(username) => query.filter(users::username.eq(username)),
    };
    Ok(query.first(conn).await.optional()?)
}

/// The user and its password hash, for sign-in.
pub async fn find_credentials(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    email: &str,
) -> Result<Option<(UserRow, Option<String>)>> {
    Ok(users::table
        .filter(users::tenant_id.eq(tenant).and(users::email.eq(email)))
        .select((UserRow::as_select(), users::password_hash))
        .first(conn)
        .await
        .optional()?)
}

/// Applies `changes`; returns the row before and after, or `None` if there is no such user.
pub async fn update_user(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
    changes: &UserChanges,
) -> Result<Option<(UserRow, UserRow)>> {
    conn.transaction::<_, Error, _>(async |conn| {
        let before = users::table
            .filter(users::tenant_id.eq(tenant).and(users::id.eq(id)))
            .select(UserRow::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some(before) = before else {
            return Ok(None);
        };
        let after = diesel::update(users::table.filter(users::id.eq(id)))
            .set(changes)
            .returning(UserRow::as_returning())
            .get_result(conn)
            .await
            .map_err(write_error)?;
        Ok(Some((before, after)))
    })
    .await
}

/// Deletes a user; returns the deleted row, or `None` if there was none.
pub async fn delete_user(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    id: Uuid,
) -> Result<Option<UserRow>> {
    Ok(
        diesel::delete(users::table.filter(users::tenant_id.eq(tenant).and(users::id.eq(id))))
            .returning(UserRow::as_returning())
            .get_result(conn)
            .await
            .optional()?,
    )
}

/// One page of users by id, after `after`: at most `limit` rows, in one query.
pub async fn list_users(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    filter: &UserFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<UserRow>> {
    let mut query = users::table
        .filter(users::tenant_id.eq(tenant))
        .select(UserRow::as_select())
        .order(users::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(users::status.eq(status));
    }
    if let Some(role) = filter.role {
        query = query.filter(users::role.eq(role));
    }
    if let Some(after) = after {
        query = query.filter(users::id.gt(after));
    }
    Ok(query.load(conn).await?)
}
