//! An organization's members on its page (`members:read`): name, e-mail and roles.
use orgbase_api::service::access::OrgAccess;
use orgbase_api::service::{self, ServiceError};
use orgbase_api::AppState;
use orgbase_domain::Permission;
use orgbase_store::MemberQuery;

use crate::invitations::role_name;
use crate::views::{MemberRow, MembersSection};

/// Members the page shows; the total says how many there are.
const SHOWN: u32 = 50;

pub(crate) async fn section(
    state: &AppState,
    access: &OrgAccess<'_>,
) -> Result<Option<MembersSection>, ServiceError> {
    if !access.permissions.has(Permission::MembersRead) {
        return Ok(None);
    }
    let stats = service::members::stats(state, access).await?;
    let q = MemberQuery {
        organization_id: access.org.id,
        offset: 0,
        limit: SHOWN,
        role: None,
        workspace: None,
        q: None,
    };
    let page = service::members::list(state, access, &q, stats).await?;
    Ok(Some(MembersSection {
        total: page.total,
        members: page
            .members
            .iter()
            .map(|m| MemberRow {
                name: m.name.clone(),
                email: m.email.as_str().to_owned(),
                roles: m
                    .roles
                    .iter()
                    .map(|r| role_name(*r))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect(),
    }))
}
