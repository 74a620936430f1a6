//! What a service caches: the kinds it declares ([`KindSpec`]), their keys ([`CacheKey`],
//! [`ScopedKey`]), their TTLs and the `CACHE_TTL_<SETTING>` flags that set them.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::ArgMatches;

use super::generation;
use crate::config::CacheArgs;

/// A kind of cached value as a service declares it: its name, and the TTL setting
/// (`CACHE_TTL_<SETTING>`) that decides how long it stays fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSpec {
    /// The kind's name, in its entries' keys and its metrics.
    pub name: &'static str,
    /// The setting it follows; kinds holding one resource in several ways share one
    /// (users by email expire like users).
    pub ttl_setting: &'static str,
    /// Seconds when the setting is unset; `None` falls back to `CACHE_DEFAULT_TTL`.
    pub default_ttl: Option<u64>,
    /// The namespace whose per-scope generation its keys carry, so that
    /// [`crate::cache::Cache::invalidate_scope`] drops all of a scope's entries at once.
    pub namespace: Option<&'static str>,
}

impl KindSpec {
    /// A kind with a TTL setting of its own name.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            ttl_setting: name,
            default_ttl: None,
            namespace: None,
        }
    }

    /// The same kind, following another kind's TTL setting.
    pub const fn ttl_of(self, setting: &'static str) -> Self {
        Self {
            ttl_setting: setting,
            ..self
        }
    }

    /// The same kind, fresh for `seconds` unless configured otherwise.
    pub const fn default_ttl(self, seconds: u64) -> Self {
        Self {
            default_ttl: Some(seconds),
            ..self
        }
    }

    /// The same kind, in `namespace`: its keys must be [`ScopedKey`]s, and
    /// [`crate::cache::Cache::invalidate_scope`] on the namespace drops every one of a scope's.
    pub const fn in_namespace(self, namespace: &'static str) -> Self {
        Self {
            namespace: Some(namespace),
            ..self
        }
    }
}

impl KindSpec {
    /// How long a value of this kind stays fresh: its `CACHE_TTL_<SETTING>`, else the
    /// kind's own default, else `CACHE_DEFAULT_TTL`.
    pub fn fresh_for(&self, args: &CacheArgs) -> Duration {
        let seconds = args
            .cache_ttls
            .get(self.ttl_setting)
            .copied()
            .or(self.default_ttl)
            .unwrap_or(args.cache_default_ttl);
        Duration::from_secs(seconds)
    }
}

/// The key of a cache entry: shown in the entry's name, and naming the scope it belongs
/// to, if any. A scope is what a namespace's entries are dropped by at once
/// ([`crate::cache::Cache::invalidate_scope`]): a tenant for most kinds, a collection for
/// search results. Kinds in a namespace need scoped keys.
pub trait CacheKey: std::fmt::Display {
    /// The scope the key belongs to; `None` for unscoped keys.
    fn scope(&self) -> Option<uuid::Uuid> {
        None
    }
}

impl CacheKey for str {}
impl CacheKey for String {}
impl CacheKey for uuid::Uuid {}
impl<K: CacheKey + ?Sized> CacheKey for &K {
    /// The scope the key belongs to; `None` for unscoped keys.
    fn scope(&self) -> Option<uuid::Uuid> {
        (**self).scope()
    }
}

/// A key within a scope (a tenant, a collection), shown as `<scope>:<key>`; formatted
/// straight into the entry's name.
#[derive(Debug, Clone, Copy)]
pub struct ScopedKey<K>(pub uuid::Uuid, pub K);

impl<K: std::fmt::Display> std::fmt::Display for ScopedKey<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

impl<K: std::fmt::Display> CacheKey for ScopedKey<K> {
    /// The scope the key belongs to; `None` for unscoped keys.
    fn scope(&self) -> Option<uuid::Uuid> {
        Some(self.0)
    }
}

/// One kind of cached value, with its freshness.
#[derive(Debug, Clone)]
pub struct CacheKind {
    pub(super) name: &'static str,
    pub(super) ttl: Duration,
    pub(super) namespace: Option<&'static str>,
    /// The hot path's counters, registered once: `cache_requests_total` and the seeds'
    /// `cache_hits_total` of L1 hits.
    pub(super) l1_hits: [metrics::Counter; 2],
}

impl CacheKind {
    /// Counts `count` lookups answered by the in-process level.
    pub(super) fn record_l1_hits(&self, count: u64) {
        for counter in &self.l1_hits {
            counter.increment(count);
        }
    }

    /// The kind's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The namespace `key` is scoped to, for a kind in one; a key without a scope is
    /// never in a namespace.
    pub(super) fn scope(&self, key: &impl CacheKey) -> Option<generation::Namespace> {
        let namespace = self.namespace?;
        let scope = key.scope();
        debug_assert!(scope.is_some(), "kind {} needs scoped keys", self.name);
        Some(generation::Namespace::new(namespace, scope?))
    }
}

/// The distinct TTL settings of `kinds`, in declaration order.
fn ttl_settings(kinds: &[KindSpec]) -> Vec<&KindSpec> {
    let mut seen = Vec::<&KindSpec>::new();
    for kind in kinds {
        if !seen.iter().any(|s| s.ttl_setting == kind.ttl_setting) {
            seen.push(kind);
        }
    }
    seen
}

fn ttl_arg_id(setting: &str) -> String {
    format!("cache_ttl_{setting}")
}

/// Adds one `--cache-ttl-<setting>` / `CACHE_TTL_<SETTING>` flag per TTL setting of `kinds`.
pub fn cache_ttl_args(cmd: clap::Command, kinds: &[KindSpec]) -> clap::Command {
    ttl_settings(kinds).into_iter().fold(cmd, |cmd, kind| {
        let setting = kind.ttl_setting;
        let default = kind
            .default_ttl
            .map_or_else(|| "CACHE_DEFAULT_TTL".to_owned(), |s| s.to_string());
        cmd.arg(
            clap::Arg::new(ttl_arg_id(setting))
                .long(format!("cache-ttl-{}", setting.replace('_', "-")))
                .env(format!("CACHE_TTL_{}", setting.to_uppercase()))
                .value_parser(clap::value_parser!(u64))
                .value_name("SECONDS")
                .help(format!(
                    "Seconds a cached {} stays fresh (defaults to {default})",
                    setting.replace('_', " ")
                )),
        )
    })
}

/// The TTL settings given on the command line or in the environment.
pub fn cache_ttls_from(matches: &ArgMatches, kinds: &[KindSpec]) -> BTreeMap<&'static str, u64> {
    ttl_settings(kinds)
        .into_iter()
        .filter_map(|kind| {
            let seconds = matches.get_one::<u64>(&ttl_arg_id(kind.ttl_setting))?;
            Some((kind.ttl_setting, *seconds))
        })
        .collect()
}
