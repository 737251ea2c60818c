//! `/api/organizations/{organizationId}/workspaces…`: groups an organization places its members
//! in. Deleting one takes it off every member.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use orgbase_domain::people::parse_role_name;
use orgbase_domain::{Permission, Workspace};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::org_id;
use crate::extract::{Field, JsonBody};
use crate::native::views::rfc3339;
use crate::service;
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Workspace> for WorkspaceView {
    fn from(w: Workspace) -> Self {
        Self {
            id: w.id,
            organization_id: w.organization_id.0,
            name: w.name,
            created_at: rfc3339(&w.created_at),
            updated_at: rfc3339(&w.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceList {
    pub data: Vec<WorkspaceView>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct WorkspaceInput {
    /// 1–50 characters, unique in the organization.
    #[schema(required = true, value_type = String, max_length = 50, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "Support")]
    pub name: Field<String>,
}

fn workspace_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

fn parse_name(
    body: WorkspaceInput,
    errors: &mut orgbase_domain::ValidationErrors,
) -> Option<String> {
    body.name
        .required("name", errors)
        .and_then(|n| errors.check(parse_role_name("name", &n)))
}

/// List an organization's workspaces.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/workspaces", operation_id = "listWorkspaces", tag = "Workspaces",
    params(("organizationId" = Uuid, Path)),
    responses(
        (status = 200, description = "The workspaces", body = WorkspaceList),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks org:read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<WorkspaceList>, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::OrgRead).await?;
    let ws = service::workspaces::list(&state, &access).await?;
    Ok(Json(WorkspaceList {
        data: ws.into_iter().map(WorkspaceView::from).collect(),
    }))
}

/// Create a workspace.
#[utoipa::path(
    post, path = "/api/organizations/{organizationId}/workspaces", operation_id = "createWorkspace", tag = "Workspaces",
    params(("organizationId" = Uuid, Path)),
    request_body = WorkspaceInput,
    responses(
        (status = 201, description = "Created", body = WorkspaceView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks workspaces:manage", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body, mut errors): JsonBody<WorkspaceInput>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    let access =
        service::load_with(&state, &who, org_id(&id)?, Permission::WorkspacesManage).await?;
    let name = parse_name(body, &mut errors);
    errors.into_result()?;
    let ws = service::workspaces::create(&state, &access, name.expect("validated")).await?;
    Ok((StatusCode::CREATED, Json(ws.into())))
}

/// Get a workspace.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/workspaces/{workspaceId}", operation_id = "getWorkspace", tag = "Workspaces",
    params(("organizationId" = Uuid, Path), ("workspaceId" = Uuid, Path)),
    responses(
        (status = 200, description = "The workspace", body = WorkspaceView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks org:read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace within reach", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path((id, ws)): Path<(String, String)>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::OrgRead).await?;
    let ws = service::workspaces::get(&state, &access, workspace_id(&ws)?).await?;
    Ok(Json(ws.into()))
}

/// Rename a workspace.
#[utoipa::path(
    patch, path = "/api/organizations/{organizationId}/workspaces/{workspaceId}", operation_id = "updateWorkspace", tag = "Workspaces",
    params(("organizationId" = Uuid, Path), ("workspaceId" = Uuid, Path)),
    request_body = WorkspaceInput,
    responses(
        (status = 200, description = "The workspace", body = WorkspaceView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks workspaces:manage", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path((id, ws)): Path<(String, String)>,
    JsonBody(body, mut errors): JsonBody<WorkspaceInput>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let access =
        service::load_with(&state, &who, org_id(&id)?, Permission::WorkspacesManage).await?;
    let ws = workspace_id(&ws)?;
    // An unknown workspace is a 404 before its body is judged.
    service::workspaces::get(&state, &access, ws).await?;
    let name = parse_name(body, &mut errors);
    errors.into_result()?;
    let next = service::workspaces::rename(&state, &access, ws, name.expect("validated")).await?;
    Ok(Json(next.into()))
}

/// Delete a workspace; its members stay, without it.
#[utoipa::path(
    delete, path = "/api/organizations/{organizationId}/workspaces/{workspaceId}", operation_id = "deleteWorkspace", tag = "Workspaces",
    params(("organizationId" = Uuid, Path), ("workspaceId" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks workspaces:manage", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workspace within reach", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path((id, ws)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access =
        service::load_with(&state, &who, org_id(&id)?, Permission::WorkspacesManage).await?;
    service::workspaces::delete(&state, &access, workspace_id(&ws)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
