//! Rate limits on the wire: before a request reaches its route (and its idempotency key), it is
//! counted against its bucket (`orgbase_service::limits`). Over the limit, it is answered 429
//! with `Retry-After`, in its surface's own error shape, and nothing runs. Every answer of a
//! limited bucket carries the bucket's `RateLimit-Policy` and `RateLimit`, in the syntax of
//! draft-ietf-httpapi-ratelimit-headers-11 (May 2026), the latest draft:
//!
//! ```text
//! RateLimit-Policy: "organization";q=10;w=2
//! RateLimit: "organization";r=7;t=1
//! ```
//!
//! `q` is the burst (twice the organization's `rateLimit`), `w` the seconds in which a full
//! burst refills, `r` the requests left at once, `t` the seconds until the bucket is full again.
//!
//! A request let through goes on to the idempotency layer (`crate::idempotency::layer`), called
//! from here rather than stacked as a middleware of its own: an over-limit request never claims
//! its key, and every request passes one middleware fewer (each costs a boxed future and a
//! clone of the stack below it).
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use orgbase_domain::OrganizationId;
use orgbase_limits::{whole_seconds, Decision};
use orgbase_service::limits::Bucket;

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::surface::{self, Surface};
use crate::AppState;

/// The organization a request's path acts in, where a person's session spends its budget:
/// `/api/organizations/{id}/…` and `/v1/orgs/{id}/…`.
fn path_org(path: &str) -> Option<OrganizationId> {
    let rest = path
        .strip_prefix("/api/organizations/")
        .or_else(|| path.strip_prefix("/v1/orgs/"))?;
    rest.split('/').next()?.parse().ok()
}

/// The rate limit, then the idempotency key (see the module's documentation).
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let admit = |state: AppState, req: Request, next: Next| {
        crate::idempotency::layer(State(state), req, next)
    };
    if !state.services.config.rate_limits {
        return admit(state, req, next).await;
    }
    let Some(token) = crate::idempotency::credential(&req) else {
        return admit(state, req, next).await;
    };
    // A credential that is not one is refused by its route, in its surface's words; one that
    // cannot be looked up now (the database is away) is the route's to answer too.
    let Ok(principal) = crate::auth::authenticate(&state, &token).await else {
        return admit(state, req, next).await;
    };
    let path = req.uri().path();
    let surface = Surface::of(path);
    let taken = orgbase_service::limits::take(&state, &principal, path_org(path)).await;
    // Looked up once: the layers and the route after this one take it from here.
    req.extensions_mut().insert(Authenticated(token, principal));
    let (bucket, decision) = match taken {
        Ok(Some(t)) => t,
        Ok(None) => return admit(state, req, next).await,
        // The bucket could not be read (the database is away): the route answers for itself.
        Err(e) => {
            tracing::debug!(error = %e, "rate limit not applied");
            return admit(state, req, next).await;
        }
    };
    let mut res = if decision.allowed {
        admit(state, req, next).await
    } else {
        let wait = decision.retry_after.map_or(1, whole_seconds);
        surface::error(
            surface,
            ApiError::RateLimited {
                retry_after: wait,
                detail: format!(
                    "over the rate limit of {} requests per {} s ({}); retry after {wait} s",
                    bucket.quota.burst,
                    bucket.quota.window_secs(),
                    bucket.policy
                ),
            },
        )
    };
    if !decision.failed_open {
        add_headers(&mut res, &bucket, &decision);
    }
    res
}

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

fn add_headers(res: &mut Response, bucket: &Bucket, d: &Decision) {
    let policy = format!(
        "\"{}\";q={};w={}",
        bucket.policy,
        bucket.quota.burst,
        bucket.quota.window_secs()
    );
    let reset = if d.reset.is_zero() {
        0
    } else {
        whole_seconds(d.reset)
    };
    let state = format!("\"{}\";r={};t={reset}", bucket.policy, d.remaining);
    let h = res.headers_mut();
    // From the strings themselves (no copy).
    if let Ok(v) = HeaderValue::try_from(policy) {
        h.insert(RATELIMIT_POLICY, v);
    }
    if let Ok(v) = HeaderValue::try_from(state) {
        h.insert(RATELIMIT, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_organization_comes_from_the_path() {
        let id = OrganizationId::new();
        assert_eq!(path_org(&format!("/api/organizations/{id}")), Some(id));
        assert_eq!(
            path_org(&format!("/api/organizations/{id}/members/3")),
            Some(id)
        );
        assert_eq!(path_org(&format!("/v1/orgs/{id}/properties")), Some(id));
        assert_eq!(path_org("/api/organizations/not-an-id/members"), None);
        assert_eq!(path_org("/api/me"), None);
        assert_eq!(path_org("/api/organizations"), None);
    }
}
