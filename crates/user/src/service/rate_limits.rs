//! Tenants' rate limit plans: set and read with a platform token, stored here and
//! announced to every replica of every service (see `agentic_platform::ratelimit::plans`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentic_platform::db::Pool;
use agentic_platform::error::{Error, FieldViolation, Result};
use agentic_platform::ratelimit::plans::Announcer;
use agentic_platform::ratelimit::{Key, Mode, RuleSpec, WindowSpec, rules};
use agentic_platform::validate;
use agentic_proto::user::v1 as pb;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::UserService;
use super::tenants::require_platform;
use crate::store;

pub(super) async fn set(
    service: &UserService,
    request: Request<pb::SetTenantRateLimitsRequest>,
) -> Result<Response<pb::SetTenantRateLimitsResponse>, Status> {
    require_platform(&request, "setting rate limits needs a platform token")?;
    let message = request.get_ref();
    let (tenant, specs) = validate::all((
        validate::id("tenant_id", &message.tenant_id),
        plan(&message.rules),
    ))?;
    let json = (!specs.is_empty())
        .then(|| serde_json::to_value(&specs).map_err(Error::internal))
        .transpose()?;
    service
        .pool
        .write_in(tenant, async |conn| {
            require_tenant(conn, tenant).await?;
            store::store_rate_limits(conn, tenant, json.as_ref()).await
        })
        .await?;
    service.plans.announce(tenant, &specs).await;
    Ok(Response::new(pb::SetTenantRateLimitsResponse {
        tenant_id: tenant.to_string(),
        rules: specs.iter().map(to_proto).collect(),
    }))
}

pub(super) async fn get(
    service: &UserService,
    request: Request<pb::GetTenantRateLimitsRequest>,
) -> Result<Response<pb::GetTenantRateLimitsResponse>, Status> {
    require_platform(&request, "reading rate limits needs a platform token")?;
    let tenant = validate::id("tenant_id", &request.get_ref().tenant_id)?;
    let stored = service
        .pool
        .run(async |conn| {
            require_tenant(conn, tenant).await?;
            store::find_rate_limits(conn, tenant).await
        })
        .await?;
    let specs: Vec<RuleSpec> = match stored {
        Some(json) => serde_json::from_value(json).map_err(Error::internal)?,
        None => Vec::new(),
    };
    Ok(Response::new(pb::GetTenantRateLimitsResponse {
        tenant_id: tenant.to_string(),
        rules: specs.iter().map(to_proto).collect(),
    }))
}

/// `NOT_FOUND` unless `tenant` exists.
async fn require_tenant(conn: &mut diesel_async::AsyncPgConnection, tenant: Uuid) -> Result<()> {
    match store::find_tenant(conn, tenant).await? {
        Some(_) => Ok(()),
        None => Err(Error::NotFound("tenant")),
    }
}

/// The plan's rules, checked as the limiter will compile them: every bad field named.
fn plan(rules: &[pb::RateLimitRule]) -> Result<Vec<RuleSpec>> {
    let mut violations = Vec::new();
    let mut specs = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        let key = match rule.key.as_str() {
            "user" => Key::User,
            "tenant" => Key::Tenant,
            _ => {
                violations.push(FieldViolation {
                    field: format!("rules[{i}].key"),
                    description: "a plan's rules count per user or tenant".into(),
                });
                Key::User
            }
        };
        let mode = match rule.mode.as_str() {
            "" => None,
            "enforce" => Some(Mode::Enforce),
            "shadow" => Some(Mode::Shadow),
            _ => {
                violations.push(FieldViolation {
                    field: format!("rules[{i}].mode"),
                    description: "must be enforce or shadow, or empty".into(),
                });
                None
            }
        };
        specs.push(RuleSpec {
            name: rule.name.clone(),
            key,
            methods: rule.methods.clone(),
            windows: rule
                .windows
                .iter()
                .map(|w| WindowSpec {
                    limit: w.limit,
                    per: w.per.clone(),
                })
                .collect(),
            mode,
        });
    }
    if let Err(Error::InvalidArgument(found)) = rules::compile(&specs, "rules", Mode::Enforce) {
        violations.extend(found);
    }
    if violations.is_empty() {
        Ok(specs)
    } else {
        Err(Error::InvalidArgument(violations))
    }
}

fn to_proto(spec: &RuleSpec) -> pb::RateLimitRule {
    pb::RateLimitRule {
        name: spec.name.clone(),
        key: spec.key.name().to_owned(),
        methods: spec.methods.clone(),
        windows: spec
            .windows
            .iter()
            .map(|w| pb::RateLimitWindow {
                limit: w.limit,
                per: w.per.clone(),
            })
            .collect(),
        mode: match spec.mode {
            None => String::new(),
            Some(Mode::Enforce) => "enforce".into(),
            Some(Mode::Shadow) => "shadow".into(),
        },
    }
}

/// Tenants' plans as the database holds them, for announcing them all at start.
async fn stored_plans(pool: &Pool) -> Result<Vec<(Uuid, Vec<RuleSpec>)>> {
    let rows = pool
        .run_upkeep(async |conn| store::all_rate_limits(conn).await)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(tenant, json)| {
            serde_json::from_value::<Vec<RuleSpec>>(json)
                .ok()
                .map(|specs| (tenant, specs))
        })
        .collect())
}

/// Announces plans to every replica, and again until it worked when Redis was away.
#[derive(Clone)]
pub struct PlanBoard {
    announcer: Option<Announcer>,
    /// Set when an announcement failed: every plan is announced again.
    stale: Arc<AtomicBool>,
}

/// How often announcing every plan is retried while an announcement is owed.
const RETRY_EVERY: Duration = Duration::from_secs(2);

impl PlanBoard {
    /// Announces through `announcer` (none: no Redis, every replica is alone); every
    /// stored plan is announced at start.
    pub fn new(announcer: Option<Announcer>) -> Self {
        Self {
            announcer,
            stale: Arc::new(AtomicBool::new(true)),
        }
    }

    async fn announce(&self, tenant: Uuid, specs: &[RuleSpec]) {
        let Some(announcer) = &self.announcer else {
            return;
        };
        if let Err(error) = announcer.announce(tenant, specs).await {
            tracing::warn!(%error, "a rate limit plan was stored but not announced; retrying");
            self.stale.store(true, Ordering::Release);
        }
    }

    /// Announces every stored plan whenever an announcement is owed (one failed, or
    /// Redis restarted empty), until `stop`.
    pub async fn keep_announced(self, pool: Pool, stop: CancellationToken) {
        let Some(announcer) = &self.announcer else {
            return;
        };
        let mut ticks = tokio::time::interval(RETRY_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            // Owed after a failed announcement, and when Redis lost what it held.
            let lost = matches!(announcer.holds_plans().await, Ok(false));
            if !self.stale.swap(false, Ordering::AcqRel) && !lost {
                continue;
            }
            let announced = match stored_plans(&pool).await {
                Ok(plans) => announcer.announce_all(&plans).await.is_ok(),
                Err(_) => false,
            };
            if !announced {
                self.stale.store(true, Ordering::Release);
            }
        }
    }
}
