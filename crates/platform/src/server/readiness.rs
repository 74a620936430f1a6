//! Readiness: whether the service can answer, as grpc.health.v1 and `/health/ready` show
//! it. Every status starts `NOT_SERVING`; [`follow_readiness`] flips them all whenever the
//! database starts or stops answering, and shutdown flips them back before draining.
//!
//! grpc.health.v1 is served over the fixed set of names a server registers (its services
//! and ""), and [`LIVENESS`], which answers `SERVING` while the process runs, whatever
//! its database does: Kubernetes' gRPC liveness and startup probes ask it, so a pod that
//! lost PostgreSQL leaves the balancing (readiness) without being restarted.
//!
//! tonic-health's own service keeps its statuses in a map behind an async lock, keyed by
//! `String` and hashed with SipHash, because names may come and go at run time. Ours are
//! known when the server starts, so `Check` (what Kubernetes and load balancers call, and
//! the suite's cheapest request) is a scan of a few `&'static str` and one read of a
//! watch channel. The protocol is tonic-health's: an unregistered name is `NOT_FOUND`
//! for `Check` and `Watch`, and `Watch` sends the current status, then every change.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// The grpc.health.v1 name that is `SERVING` while the process runs.
pub const LIVENESS: &str = "liveness";

/// The statuses of a server's names; clones share them.
#[derive(Clone)]
pub struct HealthStatuses {
    names: Arc<[(&'static str, watch::Sender<ServingStatus>)]>,
    /// [`LIVENESS`]'s status: always `SERVING`.
    live: watch::Sender<ServingStatus>,
}

impl HealthStatuses {
    /// Every name starts at `initial`.
    pub fn new(names: &[&'static str], initial: ServingStatus) -> Self {
        Self {
            names: names
                .iter()
                .map(|name| (*name, watch::Sender::new(initial)))
                .collect(),
            live: watch::Sender::new(ServingStatus::Serving),
        }
    }

    /// Sets every name's status; watchers hear of it only when it changes.
    pub fn set_all(&self, status: ServingStatus) {
        for (_, sender) in self.names.iter() {
            sender.send_if_modified(|current| std::mem::replace(current, status) != status);
        }
    }

    /// The grpc.health.v1 service answering from these statuses.
    pub fn service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService {
            statuses: self.clone(),
        })
    }

    fn sender(&self, name: &str) -> Result<&watch::Sender<ServingStatus>, Status> {
        // Lengths first, and "" (what probes usually ask) without comparing bytes: `==`
        // on two empty strings still calls memcmp with their dangling pointers, and on
        // CPUs whose memcmp uses AVX-512 masked loads (AMD EPYC here) a masked load
        // from an unmapped address takes a slow fault-suppression path, which showed
        // as 2% of a Check in the profile.
        self.names
            .iter()
            .find(|(registered, _)| {
                registered.len() == name.len() && (name.is_empty() || *registered == name)
            })
            .map(|(_, sender)| sender)
            .or_else(|| (name == LIVENESS).then_some(&self.live))
            .ok_or_else(|| Status::not_found("service not registered"))
    }
}

/// The generated server's implementation; made by [`HealthStatuses::service`].
pub struct HealthService {
    statuses: HealthStatuses,
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: tonic_health::pb::health_check_response::ServingStatus::from(status) as i32,
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let sender = self.statuses.sender(&request.get_ref().service)?;
        let status = *sender.borrow();
        Ok(Response::new(response(status)))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let receiver = self
            .statuses
            .sender(&request.get_ref().service)?
            .subscribe();
        let updates = WatchStream::new(receiver).map(|status| Ok(response(status)));
        Ok(Response::new(Box::pin(updates)))
    }
}

/// Flips health, `/health/ready` and the `service_ready` gauge whenever the database
/// starts or stops answering.
pub(super) async fn follow_readiness(
    service: &'static str,
    database: Option<crate::db::Pool>,
    health: HealthStatuses,
    ready: watch::Sender<bool>,
    interval: std::time::Duration,
    timeout: std::time::Duration,
    stop: CancellationToken,
) {
    let gauge = metrics::gauge!("service_ready", "service" => service);
    gauge.set(0.0);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now_ready = match &database {
            Some(pool) => pool.ping(timeout).await,
            None => true,
        };
        if stop.is_cancelled() {
            return;
        }
        if *ready.borrow() != now_ready {
            let status = if now_ready {
                tracing::info!("database answers: ready");
                ServingStatus::Serving
            } else {
                tracing::warn!("database does not answer: not ready");
                ServingStatus::NotServing
            };
            health.set_all(status);
            ready.send_replace(now_ready);
            gauge.set(if now_ready { 1.0 } else { 0.0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;

    fn ask(service: &str) -> Request<HealthCheckRequest> {
        Request::new(HealthCheckRequest {
            service: service.into(),
        })
    }

    #[tokio::test]
    async fn check_answers_each_registered_name_and_refuses_others() {
        let statuses = HealthStatuses::new(&["", "a.v1.A"], ServingStatus::NotServing);
        let service = HealthService {
            statuses: statuses.clone(),
        };
        let status = |r: Response<HealthCheckResponse>| r.into_inner().status;
        assert_eq!(
            status(service.check(ask("a.v1.A")).await.unwrap()),
            Wire::NotServing as i32
        );
        statuses.set_all(ServingStatus::Serving);
        assert_eq!(
            status(service.check(ask("")).await.unwrap()),
            Wire::Serving as i32
        );
        let refused = service.check(ask("b.v1.B")).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::NotFound);
        let refused = service.watch(ask("b.v1.B")).await.err().expect("refused");
        assert_eq!(refused.code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn watch_sends_the_current_status_then_each_change_once() {
        let statuses = HealthStatuses::new(&[""], ServingStatus::NotServing);
        let service = HealthService {
            statuses: statuses.clone(),
        };
        let mut updates = service.watch(ask("")).await.unwrap().into_inner();
        let next = async |updates: &mut <HealthService as Health>::WatchStream| {
            updates.next().await.expect("open").expect("ok").status
        };
        assert_eq!(next(&mut updates).await, Wire::NotServing as i32);
        statuses.set_all(ServingStatus::NotServing); // no change: nothing sent
        statuses.set_all(ServingStatus::Serving);
        assert_eq!(next(&mut updates).await, Wire::Serving as i32);
        statuses.set_all(ServingStatus::NotServing);
        assert_eq!(next(&mut updates).await, Wire::NotServing as i32);
    }
}
