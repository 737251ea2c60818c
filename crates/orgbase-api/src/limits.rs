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
use axum::extract::{Request, State};
use axum::http::HeaderValue;
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

pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if !state.services.config.rate_limits {
        return next.run(req).await;
    }
    let Some(token) = crate::idempotency::credential(&req) else {
        return next.run(req).await;
    };
    // A credential that is not one is refused by its route, in its surface's words; one that
    // cannot be looked up now (the database is away) is the route's to answer too.
    let Ok(principal) = crate::auth::authenticate(&state, &token).await else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    let surface = Surface::of(path);
    let taken = orgbase_service::limits::take(&state, &principal, path_org(path)).await;
    // Looked up once: the layers and the route after this one take it from here.
    req.extensions_mut().insert(Authenticated(token, principal));
    let (bucket, decision) = match taken {
        Ok(Some(t)) => t,
        Ok(None) => return next.run(req).await,
        // The bucket could not be read (the database is away): the route answers for itself.
        Err(e) => {
            tracing::debug!(error = %e, "rate limit not applied");
            return next.run(req).await;
        }
    };
    let mut res = if decision.allowed {
        next.run(req).await
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
    if let Ok(v) = HeaderValue::from_str(&policy) {
        h.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&state) {
        h.insert("ratelimit", v);
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
