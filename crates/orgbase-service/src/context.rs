//! What a request carries through its task: its id (for error bodies and panics), and where it
//! came from and through which surface (for the audit entries of the changes it makes). The
//! HTTP layer sets it with [`scope`]; work without a request has none, and its entries say
//! `system`.
use orgbase_domain::{AuditSurface, Origin};

/// A request, as its changes record it.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub origin: Origin,
    pub surface: AuditSurface,
    /// The request asks for a change (any method but GET and HEAD, save the few routes that
    /// read by POST): what a suspended organization's own callers are refused.
    pub changes: bool,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

/// Runs `fut` as the request `ctx`.
pub async fn scope<F: std::future::Future>(ctx: RequestContext, fut: F) -> F::Output {
    REQUEST.scope(ctx, fut).await
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

/// Whether the current request asks for a change; outside a request (work the system does
/// itself, a test calling a service), a change.
pub fn changes() -> bool {
    REQUEST.try_with(|r| r.changes).unwrap_or(true)
}

/// Where the current request came from (empty outside a request: work without one).
pub fn origin() -> Origin {
    REQUEST.try_with(|r| r.origin.clone()).unwrap_or_default()
}

/// The surface the current request came through, as its audit entries name it (`system` outside
/// a request).
pub fn audit_surface() -> AuditSurface {
    REQUEST
        .try_with(|r| r.surface)
        .unwrap_or(AuditSurface::System)
}

/// Runs `fut` as part of this request (for work moved to another task).
pub async fn carry<F: std::future::Future>(ctx: Option<RequestContext>, fut: F) -> F::Output {
    match ctx {
        Some(ctx) => REQUEST.scope(ctx, fut).await,
        None => fut.await,
    }
}
