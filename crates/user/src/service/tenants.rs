//! Tenants: created with a platform token; a tenant reads itself.

use agentic_platform::auth::Caller;
use agentic_platform::error::Error;
use agentic_platform::validate;
use agentic_proto::user::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::UserService;
use crate::input;
use crate::model::{NewTenant, TenantRow};
use crate::store;

pub(super) async fn create(
    service: &UserService,
    request: Request<pb::CreateTenantRequest>,
) -> Result<Response<pb::CreateTenantResponse>, Status> {
    require_platform(&request, "creating tenants needs a platform token")?;
    let message = request.get_ref();
    let input = input::new_tenant(message)?;
    let tenant = NewTenant {
        id: Uuid::now_v7(),
        name: input.name,
        slug: input.slug,
    };
    let response = service
        .request_ids
        .once(
            &service.pool,
            Uuid::nil(),
            input.request_id,
            "CreateTenant",
            message,
            async |conn| {
                let row = store::insert_tenant(conn, &tenant).await?;
                Ok(pb::CreateTenantResponse {
                    tenant: Some(row.into()),
                })
            },
        )
        .await?;
    // A token naming it may have been refused, and its "missing" cached.
    if let Some(id) = response.tenant.as_ref().and_then(|t| t.id.parse().ok()) {
        service.principals.forget_tenant(id).await;
    }
    Ok(Response::new(response))
}

pub(super) async fn get(
    service: &UserService,
    request: Request<pb::GetTenantRequest>,
) -> Result<Response<pb::GetTenantResponse>, Status> {
    let caller = Caller::of(&request)?;
    let id = validate::id("id", &request.get_ref().id)?;
    // A tenant sees only itself; anything else is as good as absent.
    if !caller.is_platform() && caller.tenant != Some(id) {
        return Err(Error::NotFound("tenant").into());
    }
    let tenant = service
        .cache
        .get_or_load(&service.kinds.tenant, id, || {
            // The primary: a tenant is created under the platform's scope, not its own,
            // so no position announced for the tenant covers its creation.
            service
                .pool
                .run(async |conn| Ok(store::find_tenant(conn, id).await?.map(pb::Tenant::from)))
        })
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    Ok(Response::new(pb::GetTenantResponse {
        tenant: Some(tenant),
    }))
}

pub(super) async fn update(
    service: &UserService,
    request: Request<pb::UpdateTenantRequest>,
) -> Result<Response<pb::UpdateTenantResponse>, Status> {
    require_platform(&request, "updating tenants needs a platform token")?;
    let update = input::tenant_update(request.get_ref())?;
    let row = service
        .pool
        .write_in(update.id, async |conn| {
            store::update_tenant(conn, update.id, &update.changes).await
        })
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    service
        .cache
        .invalidate(&[(&service.kinds.tenant, row.id)])
        .await;
    // Every service, every replica: a suspension locks the tenant's users out now.
    service.principals.forget_tenant(row.id).await;
    Ok(Response::new(pb::UpdateTenantResponse {
        tenant: Some(row.into()),
    }))
}

pub(super) async fn list(
    service: &UserService,
    request: Request<pb::ListTenantsRequest>,
) -> Result<Response<pb::ListTenantsResponse>, Status> {
    require_platform(&request, "listing tenants needs a platform token")?;
    let message = request.get_ref();
    let (page_size, status) = input::tenant_listing(message)?;
    let fingerprint = format!("tenants|{}", status.unwrap_or(""));
    let (rows, next_page_token) = service
        .pages
        .uuid_page(
            &message.page_token,
            &fingerprint,
            page_size,
            |row: &TenantRow| row.id,
            |after, limit| {
                service
                    .pool
                    .run(async move |conn| store::list_tenants(conn, status, after, limit).await)
            },
        )
        .await?;
    Ok(Response::new(pb::ListTenantsResponse {
        tenants: rows.into_iter().map(pb::Tenant::from).collect(),
        next_page_token,
    }))
}

pub(super) fn require_platform<T>(request: &Request<T>, why: &'static str) -> Result<(), Status> {
    if Caller::of(request)?.is_platform() {
        Ok(())
    } else {
        Err(Error::PermissionDenied(why).into())
    }
}
