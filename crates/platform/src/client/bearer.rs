//! The `authorization` header a client's calls carry.

use tonic::metadata::errors::InvalidMetadataValue;
use tonic::metadata::{Ascii, MetadataValue};

/// An interceptor adding `authorization: Bearer <token>` to every call, or nothing for
/// calls made without a token.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Sends `token`; an error if it cannot be a header value.
    pub fn token(token: &str) -> Result<Self, InvalidMetadataValue> {
        Ok(Self(Some(format!("Bearer {token}").parse()?)))
    }

    /// Sends `token` (nothing when `None`). Panics if the token cannot be a header value,
    /// which a token the suite minted always can.
    pub fn new(token: Option<&str>) -> Self {
        token.map_or_else(Self::none, |t| Self::token(t).expect("an ASCII token"))
    }

    /// Sends no token.
    pub fn none() -> Self {
        Self(None)
    }

    /// The header's value (`Bearer …`), for tools that take it as text; `None` without a
    /// token.
    pub fn header(&self) -> Option<&str> {
        self.0.as_ref().and_then(|value| value.to_str().ok())
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}
