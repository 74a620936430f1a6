//! Sign-in: a tenant's slug, an email and a password for a token.

use agentic_platform::error::Error;
use agentic_platform::time::to_timestamp;
use agentic_proto::user::v1 as pb;
use tonic::{Request, Response, Status};

use super::UserService;
use crate::input;
use crate::password;
use crate::store;

/// The method whose failed attempts the `account` rules count.
const METHOD: &str = "/agentic.user.v1.UserService/Authenticate";

pub(super) async fn authenticate(
    service: &UserService,
    request: Request<pb::AuthenticateRequest>,
) -> Result<Response<pb::AuthenticateResponse>, Status> {
    let credentials = input::credentials(request.into_inner())?;
    // One answer for every failure, so callers cannot probe which part was wrong.
    let denied = || Status::from(Error::Unauthenticated("invalid credentials"));

    let (slug, email) = (&credentials.tenant_slug, &credentials.email);
    // Counted before the password is checked, so concurrent guesses cannot slip past
    // the limit; given back when the sign-in succeeds.
    let attempt = match &service.limiter {
        Some(limiter) => Some(limiter.attempt(METHOD, slug, email).await?),
        None => None,
    };
    let found = service
        .pool
        .run(
            async |conn| match store::find_tenant_by_slug(conn, slug).await? {
                Some(tenant) => store::find_credentials(conn, tenant.id, email).await,
                None => Ok(None),
            },
        )
        .await?;

    let (user, stored_hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    // Verified even when no user was found, so a miss takes as long as a wrong password.
    let matches = password::verify(credentials.password, stored_hash).await?;
    let user = match user {
        Some(user) if matches && user.is_active() => user,
        _ => return Err(denied()),
    };
    if let Some(attempt) = attempt {
        attempt.succeeded().await;
    }
    let (token, expires) =
        service
            .tokens
            .issue(&user.id.to_string(), Some(user.tenant_id), &user.role, None)?;
    Ok(Response::new(pb::AuthenticateResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expire_time: Some(to_timestamp(expires)),
        user: Some(user.into()),
    }))
}
