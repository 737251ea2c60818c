//! The audit log: the entries the services stage for their changes, and its reads.
//!
//! Every change a service makes goes to the store inside [`record`], with its entry: the store
//! writes the entry in the change's own transaction (see `orgbase_store::audit`).
use orgbase_domain::{
    now, Actor, AuditEntry, AuditQuery, OrgType, OrganizationId, Permission, Target,
};
pub use orgbase_store::audit::record;

use crate::access::{OrgAccess, PlatformAdmin, Principal};
use crate::context;
use crate::{ServiceError, Services};

/// An entry for a change `actor` makes now, in the current request (or, outside one, as work
/// of the system's own).
pub fn entry(
    actor: Actor,
    org: Option<OrganizationId>,
    action: &str,
    target: Target,
) -> AuditEntry {
    AuditEntry::new(
        org,
        now(),
        actor,
        action,
        target,
        context::audit_surface(),
        &context::origin(),
    )
}

/// An entry for a change the caller makes on the organization it reached.
pub fn on_org(access: &OrgAccess<'_>, action: &str, target: Target) -> AuditEntry {
    entry(
        access.principal.audit_actor(),
        Some(access.org.id),
        action,
        target,
    )
}

/// The most entries one page holds.
pub const PAGE_MAX: u32 = 100;

/// One organization's entries (`audit:read`). A partner key reading its own partner
/// organization reads its children's entries too.
pub async fn list_org(
    state: &Services,
    access: &OrgAccess<'_>,
    mut q: AuditQuery,
) -> Result<Vec<AuditEntry>, ServiceError> {
    access.require(Permission::AuditRead)?;
    let own_partner = matches!(access.principal, Principal::Partner { partner_id, .. }
        if *partner_id == access.org.id);
    if own_partner && access.org.org_type == OrgType::Partner {
        q.partner_id = Some(access.org.id);
    } else {
        q.organization_id = Some(access.org.id);
    }
    q.limit = q.limit.clamp(1, PAGE_MAX + 1);
    Ok(state.store.list_audit_entries(&q).await?)
}

/// Every entry, platform-wide changes included (platform keys).
pub async fn list_all(
    state: &Services,
    _admin: &PlatformAdmin,
    mut q: AuditQuery,
) -> Result<Vec<AuditEntry>, ServiceError> {
    q.limit = q.limit.clamp(1, PAGE_MAX + 1);
    Ok(state.store.list_audit_entries(&q).await?)
}
