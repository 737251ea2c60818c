//! `Idempotency-Key` on every POST: the same key and request (method, path, query, body) from
//! the same credential replays the first answer without acting again; the same key with another
//! request is 422; a second request while the first is still running is 409. Keys live in the
//! database (so they hold across nodes) for 24 hours.
//!
//! The scope is the credential (a hash of it): one client's keys never meet another's. A request
//! without a valid credential has no scope, and its key is not used; a credential that cannot be
//! looked up (the database away) is answered 503, never taken for "no credential".
//!
//! The key is claimed before anything acts, and the credential is looked up once: the handler
//! takes the principal found here. A first request that fails on our side (5xx) releases its key,
//! so the client may retry it. The release, like the keeping of an answer, is retried in the
//! background while the database is away. A request whose change committed marks its key in the
//! same transaction (`orgbase_store::idempotency_mark`): its key is never released, and if its
//! answer was lost (the COMMIT's reply, or the node, went away) a retry is told so (409
//! `idempotency_answer_lost`) instead of acting twice. A claim whose node died is taken over after
//! five minutes, unless its change committed.
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orgbase_domain::SecretHash;
use orgbase_service::idempotency::{self as keys, Claim, Mark, Outcome, StoredAnswer};
use sha2::{Digest, Sha256};

use crate::error::{problem_response, ApiError};
use crate::surface::{error, Surface};
use crate::AppState;

pub const HEADER: &str = "idempotency-key";
pub use keys::retention;
/// Answers are read whole to be kept; none of ours comes near this.
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// Headers worth replaying.
const REPLAYED_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

/// Marks an answer that carries a secret shown once (a new key, a session token): it is not
/// kept, so a replay cannot show the secret again. Handlers set it; the layer strips it.
pub const SECRET_ANSWER: &str = "x-orgbase-secret-answer";

use crate::surface::QUERY_TOKEN_ROUTE;

/// The credential a request carries, as the route reads it: the `token` query parameter on the
/// partner settings API (its last value, as the handler takes it), the `Authorization` header
/// (with or without `Bearer `) everywhere else.
pub(crate) fn credential(req: &Request) -> Option<String> {
    if req.uri().path() == QUERY_TOKEN_ROUTE {
        return url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .last()
            .filter(|t| !t.is_empty());
    }
    let v = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?
        .trim();
    let token = match v.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => v,
    };
    (!token.is_empty()).then(|| token.to_owned())
}

/// What makes two requests the same request: method, path, query (without a token) and body,
/// hashed with the credential as a key, so that a stored hash says nothing about a body (a
/// password, say) to whoever does not hold the credential.
pub fn request_hash(
    credential: &str,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> String {
    let mut h = Sha256::new();
    h.update(Sha256::digest(credential.as_bytes()));
    h.update(credential.as_bytes());
    h.update(method.as_str());
    h.update(b"\n");
    h.update(path);
    h.update(b"\n");
    // The query without the token (which is the scope already).
    let query: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k != "token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (k, v) in query {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"&");
    }
    h.update(b"\n");
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn problem(surface: Surface, status: StatusCode, code: &str, detail: &str) -> Response {
    match surface {
        Surface::Native => problem_response(status, code, detail.to_owned(), Vec::new()),
        Surface::PartnerSettings => (
            status,
            axum::Json(serde_json::json!({"success": false, "message": detail, "code": code})),
        )
            .into_response(),
        Surface::Properties => (
            status,
            axum::Json(serde_json::json!({
                "data": null,
                "errors": [{"error": code.to_ascii_uppercase(), "message": detail}],
            })),
        )
            .into_response(),
    }
}

/// The POST routes that take no credential; their key is judged at once.
const PUBLIC_POSTS: [&str; 3] = [
    "/api/auth/login",
    "/api/billing/webhooks/*",
    "/api/organizations/invite/*/accept",
];

/// `pattern` with `*` standing for one path segment.
fn path_matches(pattern: &str, path: &str) -> bool {
    let (mut p, mut q) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some("*"), Some(seg)) if !seg.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

fn invalid_key(surface: Surface) -> Response {
    match surface {
        Surface::Native => ApiError::field(
            "Idempotency-Key",
            "invalid_value",
            "must be 1–255 visible ASCII characters",
        )
        .into_response(),
        _ => problem(
            surface,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1–255 visible ASCII characters",
        ),
    }
}

fn replay(answer: StoredAnswer) -> Response {
    let mut res = Response::new(Body::from(answer.body));
    *res.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    for (k, v) in answer.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            res.headers_mut().insert(k, v);
        }
    }
    res.headers_mut()
        .insert("idempotency-replayed", HeaderValue::from_static("true"));
    res
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return strip(next.run(req).await);
    }
    let Some(raw_key) = req.headers().get(HEADER) else {
        return strip(next.run(req).await);
    };
    let surface = Surface::of(req.uri().path());
    let key = raw_key
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
        })
        .map(str::to_owned);
    // Who calls, and whether they may call here at all, come before the key is judged: a
    // request without a valid credential, or a non-platform one on a platform route, goes on
    // unkeyed to be refused (401, 403) by the route, before anything acts.
    let Some(credential) = credential(&req) else {
        return match key {
            None if PUBLIC_POSTS
                .iter()
                .any(|p| path_matches(p, req.uri().path())) =>
            {
                invalid_key(surface)
            }
            _ => strip(next.run(req).await),
        };
    };
    // Only a valid credential gets a scope: a revoked one must not be replayed an old answer,
    // and junk must not cost a write. One that could not be looked up is not "no credential":
    // going ahead unkeyed could act twice.
    let earlier = req.extensions().get::<crate::auth::Authenticated>();
    let principal = match crate::auth::authenticate_once(&state, earlier, &credential).await {
        Ok(p) => p,
        Err(ApiError::Unauthorized { .. }) => return strip(next.run(req).await),
        Err(e) => return error(surface, e),
    };
    if req.uri().path().starts_with("/api/admin/")
        && !matches!(principal, crate::auth::Principal::Platform { .. })
    {
        return strip(next.run(req).await);
    }
    let Some(key) = key else {
        return invalid_key(surface);
    };
    let scope = SecretHash::of(&credential).as_str().to_owned();
    // An upload's body is read here, up to the upload limit, only once it has a place among the
    // uploads holding a body in memory (passed on to the route, which then takes none).
    let (limit, admitted) = if req.uri().path().ends_with("/upload-avatar") {
        match state.avatars.admit_upload().await {
            Ok(a) => (state.avatars.request_limit(), Some(a)),
            Err(e) => return error(surface, e),
        }
    } else {
        (state.config.body_limit, None)
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return error(surface, ApiError::PayloadTooLarge { limit }),
    };
    let mut req = Request::from_parts(parts, Body::from(bytes.clone()));
    if let Some(a) = admitted {
        req.extensions_mut().insert(a);
    }
    // The handler's extractor takes it from here instead of looking the credential up again.
    req.extensions_mut()
        .insert(crate::auth::Authenticated(credential.clone(), principal));
    let hash = request_hash(
        &credential,
        req.method(),
        req.uri().path(),
        req.uri().query(),
        &bytes,
    );
    // The claim, the request and its bookkeeping run to their end on a task of their own: a
    // client that hangs up, or the request deadline, must not leave the key claimed with the
    // work half done, nor a claim landing in the database after its request was dropped.
    let request = crate::context::current();
    let span = tracing::Span::current();
    let work = tokio::spawn(tracing::Instrument::instrument(
        crate::context::carry(request, async move {
            let claim = Mark {
                scope,
                key,
                claim_id: uuid::Uuid::new_v4().to_string(),
            };
            claim_and_run(state, surface, claim, hash, req, next).await
        }),
        span,
    ));
    match work.await {
        Ok(res) => res,
        Err(e) => error(
            surface,
            ApiError::Internal(format!("request task failed: {e}")),
        ),
    }
}

/// Claims the key, then runs the request under it (or answers for the request that holds it).
async fn claim_and_run(
    state: AppState,
    surface: Surface,
    claim: Mark,
    hash: String,
    req: Request,
    next: Next,
) -> Response {
    let claimed = keys::claim(&state, &claim, &hash).await;
    match claimed {
        Err(e) => {
            // The claim may have been stored with its answer lost: released once the database
            // is back (only this claim, by its id), so that it does not hold the key.
            tokio::spawn(keys::settle(
                state.services.clone(),
                claim,
                Outcome::Release,
            ));
            return error(surface, e.into());
        }
        Ok(Claim::Committed { request_hash }) => {
            return if request_hash != hash {
                reused(surface)
            } else {
                problem(
                    surface,
                    StatusCode::CONFLICT,
                    "idempotency_answer_lost",
                    "the request with this Idempotency-Key was carried out, but its answer was \
                     lost when the database became unavailable; read the resource to see the \
                     result (it will not be carried out again)",
                )
            };
        }
        Ok(Claim::Done {
            request_hash,
            answer,
        }) => {
            return if request_hash != hash {
                reused(surface)
            } else if answer.status == WITHHELD {
                problem(
                    surface,
                    StatusCode::CONFLICT,
                    "idempotency_answer_withheld",
                    "this request was done; its answer held a secret shown only once, so it is \
                     not kept to be shown again",
                )
            } else {
                replay(answer)
            };
        }
        Ok(Claim::InFlight { request_hash }) => {
            return if request_hash == hash {
                problem(
                    surface,
                    StatusCode::CONFLICT,
                    "idempotency_key_in_flight",
                    "a request with this Idempotency-Key is still running; retry it shortly",
                )
            } else {
                reused(surface)
            };
        }
        Ok(Claim::Claimed) => {
            tracing::debug!(key = %claim.key, claim = %claim.claim_id, "idempotency key claimed");
        }
    }
    // The request's writes mark the key committed in their own transactions. The work is not
    // cut short by the request's deadline either: the key's fate is decided by how the work
    // really ended, not by when the client stopped waiting.
    let res = keys::run(claim.clone(), next.run(req)).await;
    finish(&state, claim, res).await
}

/// Takes the secret-answer mark off an answer that passes by.
fn strip(mut res: Response) -> Response {
    res.headers_mut().remove(SECRET_ANSWER);
    res
}

fn reused(surface: Surface) -> Response {
    problem(
        surface,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was used for another request; use a new key",
    )
}

/// The status stored for an answer that is not kept (it held a secret).
const WITHHELD: u16 = 0;

/// Keeps the answer for replays, or frees the key when the request may be tried again: an
/// error on our side, a conflict of the moment, a throttle, or a refused credential.
async fn finish(state: &AppState, claim: Mark, res: Response) -> Response {
    let status = res.status();
    let (mut parts, body) = res.into_parts();
    let secret = parts.headers.remove(SECRET_ANSWER).is_some();
    let body = match axum::body::to_bytes(body, MAX_ANSWER).await {
        Ok(b) => b,
        Err(_) => {
            tracing::error!("an answer too large to keep for its Idempotency-Key");
            tokio::spawn(keys::settle(
                state.services.clone(),
                claim,
                Outcome::Release,
            ));
            return ApiError::Internal("answer too large".into()).into_response();
        }
    };
    let retryable = status.is_server_error()
        || status == StatusCode::CONFLICT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::UNAUTHORIZED;
    let outcome = if retryable {
        // Released from a task of its own, retried while the database is away: the answer
        // (a 503, often) does not wait for it, and the key is not left stuck in flight.
        Outcome::Release
    } else {
        let answer = if secret {
            StoredAnswer {
                status: WITHHELD,
                headers: Vec::new(),
                body: Vec::new(),
            }
        } else {
            StoredAnswer {
                status: status.as_u16(),
                headers: REPLAYED_HEADERS
                    .iter()
                    .filter_map(|h| {
                        parts
                            .headers
                            .get(h)
                            .and_then(|v| v.to_str().ok())
                            .map(|v| (h.as_str().to_owned(), v.to_owned()))
                    })
                    .collect(),
                body: body.to_vec(),
            }
        };
        // Kept before the answer goes out, so that a retry right after it replays it.
        match keys::keep(state, &claim, &answer).await {
            Ok(()) => {
                tracing::debug!(key = %claim.key, claim = %claim.claim_id, status = answer.status, "idempotency key answered");
                return Response::from_parts(parts, Body::from(body));
            }
            Err(e) => {
                tracing::warn!(error = %e, "keeping an idempotency key's answer failed; retrying");
                Outcome::Keep(answer)
            }
        }
    };
    tokio::spawn(keys::settle(state.services.clone(), claim, outcome));
    Response::from_parts(parts, Body::from(body))
}
