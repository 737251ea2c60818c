//! The Orgbase domain: identifiers, value types that cannot hold an invalid value, the entities
//! built from them, and the rules that govern changes. Nothing here does I/O.
#![forbid(unsafe_code)]

pub mod access_check;
pub mod audit;
pub mod credential;
pub mod ids;
pub mod organization;
pub mod people;
pub mod plan;
pub mod rules;
pub mod validation;
pub mod wallet;
pub mod webhook;

pub use audit::{Actor, ActorType, AuditEntry, AuditQuery, AuditSurface, Audited, Origin, Target};
pub use credential::{ApiKey, KeyKind, NewSecret, SecretHash};
pub use ids::{ApiKeyId, OrganizationId, UserId};
pub use organization::*;
pub use people::{
    Email, Invitation, InvitationState, Member, Permission, Permissions, Role, Session, User,
    Workspace,
};
pub use plan::{BillingProvider, Plan, PlanInterval, Subscription};
pub use validation::{FieldError, ValidationErrors};

/// The current time, at the microsecond precision both databases keep, so that what is stored
/// reads back equal.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
