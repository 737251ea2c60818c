//! What a request carries through its task: its id (for error bodies and panics), and where it
//! came from and through which surface (for the audit entries of the changes it makes).
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use orgbase_domain::{AuditSurface, Origin};
use std::net::SocketAddr;

use crate::surface::Surface;
use crate::AppState;

pub use orgbase_service::context::{
    audit_surface, carry, current, origin, request_id, RequestContext,
};

/// Routes that read, though by POST (a body of questions).
pub const READS_BY_POST: &[&str] = &["/api/access/check"];

/// The admin console's pages (`orgbase-console`), whose changes say `surface: console`.
pub fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// The longest user agent an entry keeps.
const USER_AGENT_MAX: usize = 512;

/// Makes the request id (set by `SetRequestIdLayer`), the client's address (see
/// `client_address`) and user agent, and the surface available to everything the request runs.
pub async fn scope(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ctx = context_of(&state, &req);
    orgbase_service::context::scope(ctx, next.run(req)).await
}

fn context_of(state: &AppState, req: &Request) -> RequestContext {
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
            client_address: req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| {
                state
                    .config
                    .trusted_proxies
                    .client(c.0.ip(), req.headers())
                    .to_string()
            }),
            user_agent,
        },
        changes: !matches!(*req.method(), Method::GET | Method::HEAD)
            && !READS_BY_POST.contains(&req.uri().path()),
        surface: match Surface::of(req.uri().path()) {
            _ if is_console(req.uri().path()) => AuditSurface::Console,
            Surface::Native => AuditSurface::Native,
            Surface::PartnerSettings => AuditSurface::PartnerSettings,
            Surface::Properties => AuditSurface::Properties,
        },
    }
}
