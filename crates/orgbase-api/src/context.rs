//! What a request carries through its task: its id (for error bodies and panics), and where it
//! came from and through which surface (for the audit entries of the changes it makes).
use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use orgbase_domain::{AuditSurface, Origin};
use std::net::SocketAddr;

use crate::surface::Surface;

/// A request, as its changes record it.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub origin: Origin,
    pub surface: Surface,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// The current request's id, if called within a request.
pub fn request_id() -> Option<String> {
    REQUEST
        .try_with(|r| r.origin.request_id.clone())
        .ok()
        .flatten()
}

/// The current request, if called within one.
pub fn current() -> Option<RequestContext> {
    REQUEST.try_with(Clone::clone).ok()
}

/// Where the current request came from (empty outside a request: work without one).
pub fn origin() -> Origin {
    REQUEST.try_with(|r| r.origin.clone()).unwrap_or_default()
}

/// The surface the current request came through, as its audit entries name it (`system` outside
/// a request).
pub fn audit_surface() -> AuditSurface {
    match REQUEST.try_with(|r| r.surface) {
        Ok(Surface::Native) => AuditSurface::Native,
        Ok(Surface::PartnerSettings) => AuditSurface::PartnerSettings,
        Ok(Surface::Properties) => AuditSurface::Properties,
        Err(_) => AuditSurface::System,
    }
}

/// The longest user agent an entry keeps.
const USER_AGENT_MAX: usize = 512;

/// Makes the request id (set by `SetRequestIdLayer`), the client's address and user agent, and
/// the surface available to everything the request runs.
pub async fn scope(req: Request, next: Next) -> Response {
    let ctx = context_of(&req);
    REQUEST.scope(ctx, next.run(req)).await
}

fn context_of(req: &Request) -> RequestContext {
    let text = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let user_agent = text(header::USER_AGENT).map(|mut ua| {
        if ua.len() > USER_AGENT_MAX {
            let mut end = USER_AGENT_MAX;
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua.truncate(end);
        }
        ua
    });
    RequestContext {
        origin: Origin {
            request_id: text(header::HeaderName::from_static("x-request-id")),
            client_address: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
            user_agent,
        },
        surface: Surface::of(req.uri().path()),
    }
}

/// Runs `fut` as part of this request (for work moved to another task).
pub async fn carry<F: std::future::Future>(ctx: Option<RequestContext>, fut: F) -> F::Output {
    match ctx {
        Some(ctx) => REQUEST.scope(ctx, fut).await,
        None => fut.await,
    }
}
