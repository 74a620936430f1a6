//! A bound in front of the SDK's batch span processor that counts what it drops.
//!
//! The batch processor already drops spans when its queue is full, but it only says how
//! many at shutdown. Here every span handed to it is counted until its export ends (well
//! or not), and a span that would overflow the queue is dropped before it gets there, as
//! `otel_spans_dropped_total`. A hung collector so costs counted drops, never a wait.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};

/// Spans handed on and not yet through an export.
#[derive(Clone, Default)]
pub(super) struct InFlight(Arc<AtomicUsize>);

/// Hands spans to `inner` while fewer than `capacity` are in flight; drops and counts the
/// rest.
pub(super) struct Bounded<P> {
    inner: P,
    in_flight: InFlight,
    capacity: usize,
    dropped: metrics::Counter,
}

impl<P> Bounded<P> {
    pub(super) fn new(inner: P, in_flight: InFlight, capacity: usize) -> Self {
        let dropped = metrics::counter!("otel_spans_dropped_total");
        dropped.increment(0);
        Self {
            inner,
            in_flight,
            capacity,
            dropped,
        }
    }
}

impl<P> fmt::Debug for Bounded<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<P: SpanProcessor> SpanProcessor for Bounded<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let counter = &self.in_flight.0;
        if counter.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            counter.fetch_sub(1, Ordering::AcqRel);
            self.dropped.increment(1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter, telling [`Bounded`] when each batch is through.
#[derive(Debug)]
pub(super) struct Releasing<E> {
    inner: E,
    in_flight: InFlight,
}

impl<E> Releasing<E> {
    pub(super) fn new(inner: E, in_flight: InFlight) -> Self {
        Self { inner, in_flight }
    }
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.load(Ordering::Relaxed))
    }
}

/// Releases a batch's spans when its export ends, also when the export is given up.
struct Release(InFlight, usize);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

impl<E: SpanExporter> SpanExporter for Releasing<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let release = Release(self.in_flight.clone(), batch.len());
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            drop(release);
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts every batch at once.
    #[derive(Debug)]
    struct Accept;

    impl SpanExporter for Accept {
        async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
            Ok(())
        }
    }

    #[derive(Debug, Default)]
    struct Collect(std::sync::Mutex<usize>);

    impl SpanProcessor for Collect {
        fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}
        fn on_end(&self, _: SpanData) {
            *self.0.lock().unwrap() += 1;
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    fn span() -> SpanData {
        use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "s".into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[test]
    fn spans_past_the_bound_are_dropped_until_an_export_releases_them() {
        let in_flight = InFlight::default();
        let bounded = Bounded::new(Collect::default(), in_flight.clone(), 3);
        for _ in 0..5 {
            bounded.on_end(span());
        }
        assert_eq!(*bounded.inner.0.lock().unwrap(), 3, "two dropped");
        let exporter = Releasing::new(Accept, in_flight.clone());
        futures::executor::block_on(exporter.export(vec![span(), span()])).expect("export");
        bounded.on_end(span());
        bounded.on_end(span());
        bounded.on_end(span());
        assert_eq!(*bounded.inner.0.lock().unwrap(), 5, "room for two again");
    }
}
