//! Field masks, per Google AIP-161 (`update_mask`) and AIP-157 (`read_mask`): the paths a
//! request names, checked against the paths a resource allows.

use std::collections::HashSet;

use prost_types::FieldMask;

use crate::error::{Error, Result};

/// Field paths of a `FieldMask`, checked against the paths a resource allows. The default
/// selects every field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPaths {
    /// `None` when the mask is absent or empty.
    paths: Option<HashSet<String>>,
}

impl FieldPaths {
    /// Parses `mask` for the request field `field` (e.g. "read_mask").
    pub fn parse(mask: Option<&FieldMask>, allowed: &[&str], field: &str) -> Result<Self> {
        let Some(mask) = mask.filter(|m| !m.paths.is_empty()) else {
            return Ok(Self { paths: None });
        };
        let mut paths = HashSet::with_capacity(mask.paths.len());
        for path in &mask.paths {
            if !allowed.contains(&path.as_str()) {
                return Err(Error::invalid(
                    field,
                    format!(
                        "unknown field path {path:?}; allowed: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            paths.insert(path.clone());
        }
        Ok(Self { paths: Some(paths) })
    }

    /// Whether the mask was absent or empty.
    pub fn is_empty(&self) -> bool {
        self.paths.is_none()
    }

    /// Whether `path` is selected; an absent mask selects everything.
    pub fn includes(&self, path: &str) -> bool {
        self.paths.as_ref().is_none_or(|paths| paths.contains(path))
    }
}

/// The paths of an `update_mask`, which must name at least one of `allowed`.
pub fn update_mask(mask: Option<&FieldMask>, allowed: &[&str]) -> Result<FieldPaths> {
    let paths = FieldPaths::parse(mask, allowed, "update_mask")?;
    if paths.is_empty() {
        return Err(Error::invalid(
            "update_mask",
            "must name at least one field",
        ));
    }
    Ok(paths)
}

/// Declares `FIELDS`, the paths a read mask may name for a message (its field names),
/// and `fn apply(message, keep)`, which clears the fields `keep` leaves out:
///
/// ```ignore
/// agentic_platform::read_mask!(pub fn apply_agent_mask(pb::Agent), AGENT_FIELDS = [id, name]);
/// ```
#[macro_export]
macro_rules! read_mask {
    ($vis:vis fn $apply:ident($message:ty), $fields:ident = [$($field:ident),+ $(,)?]) => {
        /// Field paths a `read_mask` may name.
        $vis const $fields: &[&str] = &[$(stringify!($field)),+];

        /// Clears the fields `keep` does not select; an empty mask keeps them all.
        $vis fn $apply(message: &mut $message, keep: &$crate::fieldmask::FieldPaths) {
            if keep.is_empty() {
                return;
            }
            $(
                if !keep.includes(stringify!($field)) {
                    message.$field = Default::default();
                }
            )+
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_select_and_reject_unknown_paths() {
        let allowed = ["email", "role"];
        let all = FieldPaths::parse(None, &allowed, "read_mask").unwrap();
        assert!(all.is_empty() && all.includes("email") && all.includes("role"));

        let mask = FieldMask {
            paths: vec!["email".into()],
        };
        let some = FieldPaths::parse(Some(&mask), &allowed, "read_mask").unwrap();
        assert!(some.includes("email") && !some.includes("role"));

        let bad = FieldMask {
            paths: vec!["password".into()],
        };
        let error = FieldPaths::parse(Some(&bad), &allowed, "read_mask").unwrap_err();
        assert!(matches!(&error, Error::InvalidArgument(v) if v[0].field == "read_mask"));
    }
}
