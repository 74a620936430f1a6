//! Tenants: created with a platform token; a tenant reads itself.

use agentic_platform::auth::Caller;
use agentic_platform::error::Error;
use agentic_platform::validate;
use agentic_proto::user::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::UserService;
use crate::input;
use crate::model::NewTenant;
use crate::store;

pub(super) async fn create(
    service: &UserService,
    request: Request<pb::CreateTenantRequest>,
) -> Result<Response<pb::CreateTenantResponse>, Status> {
    if !Caller::of(&request)?.is_platform() {
        return Err(Error::PermissionDenied("creating tenants needs a platform token").into());
    }
    let input = input::new_tenant(request.get_ref())?;
    let tenant = NewTenant {
        id: Uuid::now_v7(),
        name: input.name,
        slug: input.slug,
    };
    let row = service
        .pool
        .run(async |conn| store::insert_tenant(conn, &tenant).await)
        .await?;
    Ok(Response::new(pb::CreateTenantResponse {
        tenant: Some(row.into()),
    }))
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
