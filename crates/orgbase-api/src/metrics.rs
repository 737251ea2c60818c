//! Prometheus metrics: request counts and latency histograms by route and status. Each app has
//! its own registry, so several apps (tests) never share counters.
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::time::Instant;

use crate::AppState;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Requests answered 503 because the database was unavailable, by route.
    database_unavailable: IntCounterVec,
    /// Requests answered 503 because their deadline passed, by route.
    deadline_exceeded: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("orgbase".into()), None).expect("registry");
        let labels = &["method", "route", "status"];
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            labels,
        )
        .expect("counter");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            labels,
        )
        .expect("histogram");
        let database_unavailable = IntCounterVec::new(
            Opts::new(
                "database_unavailable_total",
                "Requests answered 503 because the database was unavailable",
            ),
            &["route"],
        )
        .expect("counter");
        let deadline_exceeded = IntCounterVec::new(
            Opts::new(
                "request_deadline_exceeded_total",
                "Requests answered 503 because they did not finish within the request deadline",
            ),
            &["route"],
        )
        .expect("counter");
        registry
            .register(Box::new(database_unavailable.clone()))
            .expect("register");
        registry
            .register(Box::new(deadline_exceeded.clone()))
            .expect("register");
        registry
            .register(Box::new(requests.clone()))
            .expect("register");
        registry
            .register(Box::new(duration.clone()))
            .expect("register");
        Self {
            registry,
            requests,
            duration,
            database_unavailable,
            deadline_exceeded,
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Records every request under its route template (never the raw path or query, which may hold
/// ids and tokens).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    // Counted in flight until answered: the webhook worker yields to many.
    let _in_flight = state.webhooks.worker.load().enter();
    // Only the standard methods become labels: a made-up one must not add a series.
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let res = next.run(req).await;
    if res
        .extensions()
        .get::<crate::error::DatabaseUnavailable>()
        .is_some()
    {
        state
            .metrics
            .database_unavailable
            .with_label_values(&[route.as_str()])
            .inc();
    }
    if res
        .extensions()
        .get::<crate::error::DeadlineExceeded>()
        .is_some()
    {
        state
            .metrics
            .deadline_exceeded
            .with_label_values(&[route.as_str()])
            .inc();
    }
    let status = res.status().as_u16().to_string();
    let labels = [method, route.as_str(), status.as_str()];
    state.metrics.requests.with_label_values(&labels).inc();
    state
        .metrics
        .duration
        .with_label_values(&labels)
        .observe(start.elapsed().as_secs_f64());
    res
}
