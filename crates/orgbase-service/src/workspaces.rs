//! An organization's workspaces: anyone who may read it lists them; `workspaces:manage` changes
//! them.
use orgbase_domain::{now, Permission, Target, Workspace};
use uuid::Uuid;

use super::audit;
use crate::access::OrgAccess;
use crate::{ServiceError, Services};

pub async fn list(
    state: &Services,
    access: &OrgAccess<'_>,
) -> Result<Vec<Workspace>, ServiceError> {
    access.require(Permission::OrgRead)?;
    Ok(state.store.list_workspaces(access.org.id).await?)
}

pub async fn get(
    state: &Services,
    access: &OrgAccess<'_>,
    id: Uuid,
) -> Result<Workspace, ServiceError> {
    access.require(Permission::OrgRead)?;
    Ok(state.store.get_workspace(access.org.id, id).await?)
}

/// Makes a workspace named `name` (checked already).
pub async fn create(
    state: &Services,
    access: &OrgAccess<'_>,
    name: String,
) -> Result<Workspace, ServiceError> {
    access.require(Permission::WorkspacesManage)?;
    let t = now();
    let ws = Workspace {
        id: Uuid::now_v7(),
        organization_id: access.org.id,
        name,
        created_at: t,
        updated_at: t,
    };
    let entry = audit::on_org(access, "workspace.created", Target::new("workspace", ws.id))
        .diff(None, Some(&ws));
    audit::record(vec![entry], state.store.insert_workspace(&ws)).await?;
    tracing::info!(organization_id = %ws.organization_id, workspace_id = %ws.id, actor = %access.principal.actor(), "workspace created");
    Ok(ws)
}

/// Renames a workspace; the same name changes nothing.
pub async fn rename(
    state: &Services,
    access: &OrgAccess<'_>,
    id: Uuid,
    name: String,
) -> Result<Workspace, ServiceError> {
    access.require(Permission::WorkspacesManage)?;
    let current = state.store.get_workspace(access.org.id, id).await?;
    if name == current.name {
        return Ok(current);
    }
    let next = Workspace {
        name,
        updated_at: now(),
        ..current.clone()
    };
    let entry = audit::on_org(access, "workspace.updated", Target::new("workspace", id))
        .diff(Some(&current), Some(&next));
    audit::record(vec![entry], state.store.update_workspace(&next)).await?;
    tracing::info!(organization_id = %next.organization_id, workspace_id = %next.id, actor = %access.principal.actor(), "workspace renamed");
    Ok(next)
}

/// Deletes a workspace; its members stay, without it.
pub async fn delete(
    state: &Services,
    access: &OrgAccess<'_>,
    id: Uuid,
) -> Result<(), ServiceError> {
    access.require(Permission::WorkspacesManage)?;
    let current = state.store.get_workspace(access.org.id, id).await?;
    let entry = audit::on_org(access, "workspace.deleted", Target::new("workspace", id))
        .diff(Some(&current), None);
    audit::record(vec![entry], state.store.delete_workspace(access.org.id, id)).await?;
    tracing::info!(organization_id = %access.org.id, workspace_id = %id, actor = %access.principal.actor(), "workspace deleted");
    Ok(())
}
