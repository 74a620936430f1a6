//! GetPrincipal: the standing of a tenant and one of its users, for the principal check
//! of every other service.

use agentic_platform::auth::Caller;
use agentic_platform::error::Error;
use agentic_proto::user::v1 as pb;
use tonic::{Request, Response, Status};

use super::UserService;
use crate::input;

pub(super) async fn get(
    service: &UserService,
    request: Request<pb::GetPrincipalRequest>,
) -> Result<Response<pb::GetPrincipalResponse>, Status> {
    if !Caller::of(&request)?.is_platform() {
        return Err(Error::PermissionDenied("reading principals needs a platform token").into());
    }
    let (tenant, user) = input::principal(request.get_ref())?;
    Ok(Response::new(service.standings.load(tenant, user).await?))
}
