//! Every `code` a problem answer of the native API carries, with its status and when it is
//! answered. The README's list and `docs/errors.md`'s table are made from it (a test compares
//! them), and the API tests check every problem answer they receive against it.

/// One code: its HTTP status and, in a user's words, when it is answered.
pub struct ErrorCode {
    pub code: &'static str,
    pub status: u16,
    pub when: &'static str,
}

const fn c(code: &'static str, status: u16, when: &'static str) -> ErrorCode {
    ErrorCode { code, status, when }
}

/// In order of status.
pub const ERROR_CODES: &[ErrorCode] = &[
    c("malformed_json", 400, "the body is not JSON"),
    c("malformed_body", 400, "a multipart body that cannot be read"),
    c("invalid_webhook", 400, "a billing webhook with a missing, bad or stale signature"),
    c("missing_credentials", 401, "no credential"),
    c("invalid_credentials", 401, "an unknown credential"),
    c("revoked_credentials", 401, "a revoked key or an ended session"),
    c("expired_credentials", 401, "an expired session"),
    c("invalid_login", 401, "a wrong e-mail or password (the same answer for both)"),
    c("insufficient_funds", 402, "the wallet does not cover a charge"),
    c("forbidden", 403, "the credential may not do this (a non-platform credential on `/api/admin/…`, or a missing permission)"),
    c("organization_suspended", 403, "the organization is suspended: its own keys and members may read, not change; the platform and its partner still act"),
    c("not_found", 404, "no such resource, or one outside the caller's reach"),
    c("method_not_allowed", 405, "the resource does not answer this method"),
    c("slug_taken", 409, "another organization uses the slug"),
    c("organization_deleted", 409, "the organization is deleted (restore it first)"),
    c("has_children", 409, "a partner with children cannot stop being a partner"),
    c("no_owner", 409, "the organization has no owner to act on (owner e-mail change)"),
    c("owner_protected", 409, "the owner cannot be removed or demoted; transfer ownership first"),
    c("last_platform_key", 409, "the last active platform key cannot be revoked"),
    c("email_taken", 409, "another person uses the e-mail"),
    c("already_member", 409, "the person is a member already"),
    c("invitation_pending", 409, "a pending invitation for the e-mail exists; resend it"),
    c("invitation_used", 409, "the invitation was accepted or revoked already"),
    c("invitation_not_pending", 409, "the invitation was accepted or revoked already"),
    c("role_name_taken", 409, "the organization has a role of this name"),
    c("role_in_use", 409, "the role is held by a member, a key or a pending invitation"),
    c("workspace_name_taken", 409, "the organization has a workspace of this name"),
    c("plan_exists", 409, "a plan with this id exists"),
    c("plan_in_use", 409, "organizations are on the plan, or are offered it"),
    c("default_plan", 409, "`starter`, every new organization's plan, cannot be deleted"),
    c("already_subscribed", 409, "the organization has a subscription; change its plan instead of checking out"),
    c("concurrent_update", 409, "the organization kept changing under the request; send it again"),
    c("idempotency_key_in_flight", 409, "the first request with this Idempotency-Key is still running"),
    c("idempotency_answer_lost", 409, "the first request with this Idempotency-Key changed things, but its answer was lost; nothing was done now"),
    c("idempotency_answer_withheld", 409, "the request with this Idempotency-Key was done, and its answer held a secret shown only once"),
    c("idempotency_claim_lost", 409, "the request ran so long that a retry took its Idempotency-Key over; it changed nothing"),
    c("invitation_expired", 410, "the invitation has expired; ask for a new one"),
    c("invitation_revoked", 410, "the invitation was revoked"),
    c("invitation_void", 410, "the invitation was for a membership that has ended"),
    c("precondition_failed", 412, "`If-Match` does not match the current version"),
    c("payload_too_large", 413, "the body is over the limit (1 MiB by default; an avatar 5 MiB)"),
    c("unsupported_media_type", 415, "not `application/json`; an avatar that is not multipart, or not a PNG, JPEG, WebP or GIF"),
    c("validation_failed", 422, "a field or parameter is invalid or unknown: each one in `errors`, with its own code"),
    c("invalid_body", 422, "the body is JSON but not an object, or cannot be read"),
    c("invalid_idempotency_key", 422, "the Idempotency-Key is not 1–255 visible ASCII characters"),
    c("idempotency_key_reused", 422, "the Idempotency-Key was used for another request"),
    c("too_many_requests", 429, "too many failed logins; wait for `Retry-After`"),
    c("rate_limited", 429, "over the rate limit of the credential's organization (or platform key); wait for `Retry-After`"),
    c("internal_error", 500, "anything on our side (the answer has the request id; the cause is in the log only)"),
    c("mail_failed", 502, "the invitation e-mail could not be sent (the invitation is kept; resend it)"),
    c("billing_provider_error", 502, "the billing provider failed; nothing changed here"),
    c("unavailable", 503, "avatar storage failed; nothing changed"),
    c("database_unavailable", 503, "the database cannot be reached; with `Retry-After`"),
    c("request_timeout", 503, "the request was not answered within the request timeout; with `Retry-After`"),
];

/// The status `code` is answered with, if it is one.
pub fn status_of(code: &str) -> Option<u16> {
    ERROR_CODES
        .iter()
        .find(|e| e.code == code)
        .map(|e| e.status)
}

/// The README's list: the codes of each status, one line a status.
pub fn markdown_summary() -> String {
    let mut t = String::from("| status | `code` |\n|---|---|\n");
    let mut statuses: Vec<u16> = ERROR_CODES.iter().map(|e| e.status).collect();
    statuses.dedup();
    for status in statuses {
        let codes: Vec<String> = ERROR_CODES
            .iter()
            .filter(|e| e.status == status)
            .map(|e| format!("`{}`", e.code))
            .collect();
        t.push_str(&format!("| {status} | {} |\n", codes.join(", ")));
    }
    t
}

/// `docs/errors.md`'s table: every code with when it is answered.
pub fn markdown_table() -> String {
    let mut t = String::from("| status | `code` | when |\n|---|---|---|\n");
    for e in ERROR_CODES {
        t.push_str(&format!("| {} | `{}` | {} |\n", e.status, e.code, e.when));
    }
    t
}
