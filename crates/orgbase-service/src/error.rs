//! Why a use case refused or failed, in the service's own terms: no status codes, no bodies.
//! Each surface maps these to its own error shape in one place.
use orgbase_domain::ValidationErrors;
use orgbase_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Values that break the rules, each named.
    #[error("validation failed")]
    Validation(ValidationErrors),
    /// No credential, or one that is not valid (unknown, revoked, expired).
    #[error("unauthorized: {code}")]
    Unauthorized {
        code: &'static str,
        detail: &'static str,
    },
    /// The caller may reach the resource, not do this to it.
    #[error("forbidden")]
    Forbidden(String),
    /// The organization is suspended, and the caller is its own (a key of it, a member): it may
    /// read, not change.
    #[error("organization suspended")]
    Suspended(String),
    /// The wallet does not cover the charge.
    #[error("payment required: {code}")]
    PaymentRequired { code: &'static str, detail: String },
    /// Too many attempts: try again after `retry_after` seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after: u64, detail: String },
    /// The resource existed but is used up (an expired or revoked invitation).
    #[error("gone: {code}")]
    Gone { code: &'static str, detail: String },
    /// No such resource within the caller's reach.
    #[error("not found")]
    NotFound,
    /// The change contradicts the resource's state.
    #[error("conflict: {code}")]
    Conflict { code: &'static str, detail: String },
    /// The version the caller pinned is not the stored one.
    #[error("precondition failed")]
    PreconditionFailed,
    /// Orgbase is too busy for this right now (the password hashing queue is full).
    #[error("service unavailable")]
    Unavailable,
    /// The database cannot be reached or written right now. Nothing was changed.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),
    /// A service we depend on (the mail server, a billing provider) failed.
    #[error("upstream failure: {code}")]
    Upstream { code: &'static str, detail: String },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// A validation failure of one field.
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::Validation(ValidationErrors::single(field, code, message))
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<ValidationErrors> for ServiceError {
    fn from(e: ValidationErrors) -> Self {
        Self::Validation(e)
    }
}

/// What a storage refusal means to a caller: the constraints storage enforces become conflicts
/// with a stable code.
impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::VersionMismatch => Self::PreconditionFailed,
            StoreError::Unavailable(cause) => Self::DatabaseUnavailable(cause),
            StoreError::Conflict { constraint } => {
                let (code, detail) = match constraint {
                    "organization_slug" => {
                        ("slug_taken", "another organization already uses this slug")
                    }
                    "last_platform_key" => (
                        "last_platform_key",
                        "this is the last active platform key; create another one first",
                    ),
                    "user_email" => ("email_taken", "another person already uses this e-mail"),
                    "role_name" => (
                        "role_name_taken",
                        "the organization has a role of this name",
                    ),
                    "workspace_name" => (
                        "workspace_name_taken",
                        "the organization has a workspace of this name",
                    ),
                    "invitation_pending" => (
                        "invitation_pending",
                        "a pending invitation for this e-mail exists; resend it instead",
                    ),
                    "member_exists" => (
                        "already_member",
                        "the person with this e-mail is a member already",
                    ),
                    "owner_role" => (
                        "owner_protected",
                        "the owner cannot be removed or demoted; transfer ownership first",
                    ),
                    "role_in_use" => (
                        "role_in_use",
                        "the role is held by a member, a key or a pending invitation",
                    ),
                    "idempotency_claim_lost" => (
                        "idempotency_claim_lost",
                        "the request ran so long that its Idempotency-Key was taken over by a \
                         retry; nothing was changed by it",
                    ),
                    "invitation_not_pending" => (
                        "invitation_not_pending",
                        "the invitation was accepted or revoked already",
                    ),
                    other => return Self::Internal(format!("unexpected conflict on {other}")),
                };
                Self::Conflict {
                    code,
                    detail: detail.into(),
                }
            }
            other => Self::Internal(other.to_string()),
        }
    }
}
