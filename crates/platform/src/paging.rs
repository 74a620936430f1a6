//! List paging, per Google AIP-158 (field masks are in [`crate::fieldmask`]).
//!
//! Page tokens are opaque and tamper-evident: the keyset cursor plus an HMAC over the
//! cursor and the query's filters, so a token cannot be forged, edited, or replayed
//! against a different filter.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::error::{Error, Result};

/// The page size when a request asks for none.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
/// The largest page; larger requests are clamped.
pub const MAX_PAGE_SIZE: i64 = 100;

/// Token format version; bump when the cursor layout changes.
const TOKEN_VERSION: u8 = 1;
/// Bytes of the HMAC kept in a token: 128 bits is plenty to stop forgery.
const TAG_LEN: usize = 16;

/// The page size a request asked for: default when 0, clamped to the maximum.
pub fn page_size(requested: i32) -> Result<i64> {
    page_size_within(requested, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
}

/// [`page_size`] for a listing with its own default and maximum.
pub fn page_size_within(requested: i32, default: i64, max: i64) -> Result<i64> {
    match requested {
        n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
        0 => Ok(default),
        n => Ok(i64::from(n).min(max)),
    }
}

/// Signs and checks page tokens. Every replica must share the secret.
#[derive(Clone)]
pub struct PageTokens {
    key: Hmac<Sha256>,
}

impl PageTokens {
    /// Page tokens signed with a key derived from `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut derive = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes any key");
        // A key of its own, so a page token can never double as anything else signed.
        derive.update(b"agentic page token v1");
        let key = derive.finalize().into_bytes();
        Self {
            key: Hmac::new_from_slice(&key).expect("hmac takes any key"),
        }
    }

    /// A token resuming after `cursor` for a query with these `filters`.
    pub fn encode(&self, cursor: &[u8], filters: &str) -> String {
        let mut token = Vec::with_capacity(1 + cursor.len() + TAG_LEN);
        token.push(TOKEN_VERSION);
        token.extend_from_slice(cursor);
        let tag = self.tag(&token, filters);
        token.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The cursor in `token`; `None` for the first page (an empty token).
    pub fn decode(&self, token: &str, filters: &str) -> Result<Option<Vec<u8>>> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || Error::invalid("page_token", "is not a token from this list query");
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if raw.len() < 1 + TAG_LEN || raw[0] != TOKEN_VERSION {
            return Err(invalid());
        }
        let (body, tag) = raw.split_at(raw.len() - TAG_LEN);
        let mut mac = self.key.clone();
        mac.update(body);
        mac.update(filters.as_bytes());
        mac.verify_truncated_left(tag).map_err(|_| invalid())?;
        Ok(Some(body[1..].to_vec()))
    }

    /// Convenience for the common keyset: resume after a UUID.
    pub fn encode_uuid(&self, after: Uuid, filters: &str) -> String {
        self.encode(after.as_bytes(), filters)
    }

    /// The id a token from [`PageTokens::encode_uuid`] carries, if its signature and
    /// `filters` match; `None` for an empty token.
    pub fn decode_uuid(&self, token: &str, filters: &str) -> Result<Option<Uuid>> {
        self.decode(token, filters)?
            .map(|bytes| {
                Uuid::from_slice(&bytes).map_err(|_| {
                    Error::invalid("page_token", "is not a token from this list query")
                })
            })
            .transpose()
    }

    /// One keyset page by UUID: decodes `token` (bound to `filters`), has `load` read one
    /// row more than `page_size` after its cursor, and returns the page with the token
    /// that resumes after it ("" on the last page).
    pub async fn uuid_page<T, F, Fut>(
        &self,
        token: &str,
        filters: &str,
        page_size: i64,
        id: impl Fn(&T) -> Uuid,
        load: F,
    ) -> Result<(Vec<T>, String)>
    where
        F: FnOnce(Option<Uuid>, i64) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>>>,
    {
        let after = self.decode_uuid(token, filters)?;
        let mut rows = load(after, page_size + 1).await?;
        let next = self.finish_uuid_page(&mut rows, page_size, id, filters);
        Ok((rows, next))
    }

    /// Closes a page read with one row more than `page_size` (which tells whether another
    /// page follows, without COUNT(*)): drops the extra row and returns the token that
    /// resumes after the last row kept, or "" on the last page.
    pub fn finish_uuid_page<T>(
        &self,
        rows: &mut Vec<T>,
        page_size: i64,
        id: impl Fn(&T) -> Uuid,
        filters: &str,
    ) -> String {
        let more = rows.len() as i64 > page_size;
        rows.truncate(page_size as usize);
        match (more, rows.last()) {
            (true, Some(last)) => self.encode_uuid(id(last), filters),
            _ => String::new(),
        }
    }

    fn tag(&self, body: &[u8], filters: &str) -> Vec<u8> {
        let mut mac = self.key.clone();
        mac.update(body);
        mac.update(filters.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_clamps_and_rejects_negative() {
        assert_eq!(page_size(0).unwrap(), 20);
        assert_eq!(page_size(7).unwrap(), 7);
        assert_eq!(page_size(100).unwrap(), 100);
        assert_eq!(page_size(101).unwrap(), 100);
        assert_eq!(page_size(i32::MAX).unwrap(), 100);
        let error = page_size(-1).unwrap_err();
        assert!(matches!(&error, Error::InvalidArgument(v) if v[0].field == "page_size"));
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering_and_other_filters() {
        let tokens = PageTokens::new(b"secret");
        let after = Uuid::now_v7();
        let token = tokens.encode_uuid(after, "status=1");
        assert_eq!(tokens.decode_uuid(&token, "status=1").unwrap(), Some(after));
        assert_eq!(tokens.decode_uuid("", "status=1").unwrap(), None);

        // Another filter, another secret, a flipped bit, garbage: all rejected.
        assert!(tokens.decode_uuid(&token, "status=2").is_err());
        assert!(
            PageTokens::new(b"other")
                .decode_uuid(&token, "status=1")
                .is_err()
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        raw[3] ^= 1;
        assert!(
            tokens
                .decode_uuid(&URL_SAFE_NO_PAD.encode(&raw), "status=1")
                .is_err()
        );
        assert!(tokens.decode_uuid("not a token!", "status=1").is_err());
        assert!(tokens.decode_uuid("AQ", "status=1").is_err());
    }
}
