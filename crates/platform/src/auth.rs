//! Bearer JWTs: issued by the user service, verified by every service.
//!
//! [`Tokens`] issues and verifies them; the server's auth layer
//! ([`crate::server::layers::auth`]) checks every call's token and puts the verified
//! [`Caller`] into the request's extensions, where handlers find it with [`Caller::of`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthArgs;
use crate::error::{Error, Result};

/// Shortest secret accepted for HS256.
const MIN_SECRET_LEN: usize = 32;
/// Verified tokens remembered, so a client's repeated token is checked once.
const VERIFIED_CAPACITY: u64 = 10_000;
/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECS: i64 = 5;

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, or a free-form name for service and platform tokens.
    pub sub: String,
    /// The tenant the bearer acts in; absent for platform tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Uuid>,
    /// admin, member, viewer, or platform.
    pub role: String,
    /// The issuer (`JWT_ISSUER`).
    pub iss: String,
    /// Issued at, in seconds since the epoch.
    pub iat: i64,
    /// Expires at, in seconds since the epoch.
    pub exp: i64,
}

/// Role names carried in tokens.
pub mod roles {
    /// Manages its tenant's users and resources.
    pub const ADMIN: &str = "admin";
    /// Creates and uses resources of its tenant.
    pub const MEMBER: &str = "member";
    /// Reads its tenant's resources.
    pub const VIEWER: &str = "viewer";
    /// Operates the platform itself (creates tenants); belongs to no tenant.
    pub const PLATFORM: &str = "platform";
}

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject: a user id, or a service's or the platform's name.
    pub subject: String,
    /// The tenant it acts in; `None` for platform tokens.
    pub tenant: Option<Uuid>,
    /// One of [`roles`].
    pub role: String,
    /// The subject parsed once, for what keys on it per call (rate limits).
    subject_key: SubjectKey,
}

/// A caller's subject as keys hold it: a user id, or a shared name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubjectKey {
    Id(Uuid),
    Name(Arc<str>),
}

impl Caller {
    /// The caller a token's claims name.
    pub fn new(subject: String, tenant: Option<Uuid>, role: String) -> Self {
        let subject_key = match Uuid::try_parse(&subject) {
            Ok(id) => SubjectKey::Id(id),
            Err(_) => SubjectKey::Name(subject.as_str().into()),
        };
        Self {
            subject,
            tenant,
            role,
            subject_key,
        }
    }

    /// The subject as keys hold it.
    pub(crate) fn subject_key(&self) -> &SubjectKey {
        &self.subject_key
    }

    /// The caller's tenant; platform tokens have none.
    pub fn tenant(&self) -> Result<Uuid> {
        self.tenant.ok_or(Error::PermissionDenied(
            "this call needs a token scoped to a tenant",
        ))
    }

    /// Whether this is a platform token (it may create tenants).
    pub fn is_platform(&self) -> bool {
        self.role == roles::PLATFORM
    }

    /// Fails unless the caller is a tenant admin.
    pub fn require_admin(&self) -> Result<()> {
        if self.role == roles::ADMIN {
            Ok(())
        } else {
            Err(Error::PermissionDenied("this call needs the admin role"))
        }
    }

    /// The caller's tenant, for writes: tenant admins only.
    pub fn admin_tenant(&self) -> Result<Uuid> {
        let tenant = self.tenant()?;
        self.require_admin()?;
        Ok(tenant)
    }

    /// The caller's tenant, for writes open to members: members and admins, not viewers.
    pub fn member_tenant(&self) -> Result<Uuid> {
        let tenant = self.tenant()?;
        if self.role == roles::ADMIN || self.role == roles::MEMBER {
            Ok(tenant)
        } else {
            Err(Error::PermissionDenied(
                "this call needs the member or admin role",
            ))
        }
    }

    /// The caller a request carries (put there by the auth layer,
    /// [`crate::server::layers::AuthLayer`]).
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Caller> {
        request
            .extensions()
            .get::<Arc<Caller>>()
            .map(|caller| &**caller)
            .ok_or(Error::Unauthenticated("missing bearer token"))
    }
}

/// Signs and verifies tokens with one HMAC secret.
///
/// Verification results are cached by token until the token's expiry: a token is
/// immutable, so a signature checked once stays checked. Failures are never cached.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl: Duration,
    /// Proves this suite's own calls were counted against rate limits already
    /// ([`crate::hop`]): derived from the same secret, so only services make it.
    hops: crate::hop::HopKey,
    /// Only verified tokens are inserted, so keys are not attacker-chosen; foldhash
    /// (seeded per process) hashes these ~200-byte keys far faster than SipHash.
    verified: moka::sync::Cache<Box<str>, (Arc<Caller>, i64), foldhash::fast::RandomState>,
}

impl Tokens {
    /// Tokens signed with `JWT_SECRET` (at least 32 bytes) for `JWT_ISSUER`.
    pub fn new(args: &AuthArgs) -> Result<Self> {
        if args.jwt_secret.len() < MIN_SECRET_LEN {
            return Err(Error::invalid(
                "JWT_SECRET",
                format!("must be at least {MIN_SECRET_LEN} bytes"),
            ));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&args.jwt_issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS as u64;
        Ok(Self {
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(Duration::from_secs(300))
                .build_with_hasher(foldhash::fast::RandomState::default()),
            encoding: EncodingKey::from_secret(args.jwt_secret.as_bytes()),
            decoding: DecodingKey::from_secret(args.jwt_secret.as_bytes()),
            validation,
            issuer: args.jwt_issuer.clone(),
            ttl: Duration::from_secs(args.jwt_ttl),
            hops: crate::hop::HopKey::new(args.jwt_secret.as_bytes()),
        })
    }

    /// The key that proves a call was counted already (made with the same secret).
    pub(crate) fn hop_key(&self) -> &crate::hop::HopKey {
        &self.hops
    }

    /// A signed token for `subject`, valid for the configured TTL (or `ttl`).
    pub fn issue(
        &self,
        subject: &str,
        tenant: Option<Uuid>,
        role: &str,
        ttl: Option<Duration>,
    ) -> Result<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let expires = now
            + chrono::Duration::from_std(ttl.unwrap_or(self.ttl))
                .map_err(|_| Error::invalid("ttl", "is too long"))?;
        let claims = Claims {
            sub: subject.to_owned(),
            tenant,
            role: role.to_owned(),
            iss: self.issuer.clone(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::internal(format!("cannot sign token: {e}")))?;
        Ok((token, expires))
    }

    /// The caller `token` names, if it is validly signed and unexpired. Shared: requests
    /// with the same token share one `Caller`.
    pub fn verify(&self, token: &str) -> Result<Arc<Caller>> {
        if let Some((caller, expires)) = self.verified.get(token) {
            if Utc::now().timestamp() < expires + LEEWAY_SECS {
                return Ok(caller);
            }
            self.verified.invalidate(token);
            return Err(Error::Unauthenticated("token expired"));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Error::Unauthenticated("token expired")
                }
                _ => Error::Unauthenticated("invalid token"),
            })?;
        let claims = data.claims;
        let caller = Arc::new(Caller::new(claims.sub, claims.tenant, claims.role));
        self.verified
            .insert(token.into(), (caller.clone(), claims.exp));
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(secret: &str) -> AuthArgs {
        AuthArgs {
            jwt_secret: secret.into(),
            jwt_issuer: "agentic".into(),
            jwt_ttl: 60,
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let tokens = Tokens::new(&args(SECRET)).unwrap();
        let tenant = Uuid::now_v7();
        let (token, _) = tokens
            .issue("u1", Some(tenant), roles::ADMIN, None)
            .unwrap();
        let caller = tokens.verify(&token).unwrap();
        assert_eq!(caller.tenant, Some(tenant));
        assert_eq!(caller.role, "admin");

        let other = Tokens::new(&args("another-secret-another-secret-xx")).unwrap();
        assert!(matches!(
            other.verify(&token),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            tokens.verify("garbage"),
            Err(Error::Unauthenticated(_))
        ));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(Tokens::new(&args("short")).is_err());
    }
}
