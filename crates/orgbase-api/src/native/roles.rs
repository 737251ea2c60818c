//! `/api/organizations/{organizationId}/roles…`: the system roles (1–5, read-only) and the
//! organization's custom roles, made from the permission catalogue. Nobody grants a permission
//! they do not hold.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use orgbase_domain::people::{parse_description, parse_permissions, parse_role_name, system_roles};
use orgbase_domain::{Permission, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::org_id;
use crate::extract::{Field, JsonBody};
use crate::native::views::rfc3339;
use crate::service;
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleView {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    /// Names from the permission catalogue.
    pub permissions: Vec<&'static str>,
    /// System roles are the same everywhere and cannot be changed.
    pub system: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        Self {
            system: r.is_system(),
            id: r.id,
            name: r.name,
            description: r.description,
            permissions: r.permissions.names(),
            created_at: r.created_at.as_ref().map(rfc3339),
            updated_at: r.updated_at.as_ref().map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    pub data: Vec<RoleView>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct RoleInput {
    /// 1–50 characters, unique in the organization.
    #[schema(value_type = String, max_length = 50, pattern = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$", example = "support")]
    pub name: Field<String>,
    /// Up to 500 characters.
    #[schema(value_type = Option<String>)]
    pub description: Field<String>,
    /// Permission names from the catalogue: org:read, org:update, members:read, members:manage,
    /// invitations:manage, workspaces:manage, roles:manage, wallet:read, billing:manage,
    /// keys:manage, webhooks:manage, audit:read.
    #[schema(value_type = Vec<String>, example = json!(["org:read", "members:read"]))]
    pub permissions: Field<Vec<String>>,
}

fn role_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(ApiError::NotFound)
}

/// List the roles usable in an organization: the system roles, then its own.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/roles", operation_id = "listRoles", tag = "Roles",
    params(("organizationId" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The roles", body = RoleList),
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
) -> Result<Json<RoleList>, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::OrgRead).await?;
    let roles = service::roles::list(&state, &access).await?;
    Ok(Json(RoleList {
        data: roles.into_iter().map(RoleView::from).collect(),
    }))
}

/// Create a custom role.
#[utoipa::path(
    post, path = "/api/organizations/{organizationId}/roles", operation_id = "createRole", tag = "Roles",
    params(("organizationId" = uuid::Uuid, Path)),
    request_body = RoleInput,
    responses(
        (status = 201, description = "Created", body = RoleView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks roles:manage, or would grant a permission the caller lacks", body = Problem, content_type = "application/problem+json"),
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
    JsonBody(body, mut errors): JsonBody<RoleInput>,
) -> Result<(StatusCode, Json<RoleView>), ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::RolesManage).await?;
    let e = &mut errors;
    let name = body
        .name
        .required("name", e)
        .and_then(|n| e.check(parse_role_name("name", &n)));
    let description = body
        .description
        .nullable("description", e)
        .flatten()
        .and_then(|d| e.check(parse_description("description", &d)))
        .filter(|d| !d.is_empty());
    let permissions = body
        .permissions
        .required("permissions", e)
        .and_then(|p| e.check(parse_permissions("permissions", &p)));
    if let Some(n) = &name {
        if system_roles()
            .iter()
            .any(|r| r.name.eq_ignore_ascii_case(n))
        {
            e.add("name", "reserved", "is the name of a system role");
        }
    }
    errors.clone().into_result()?;
    let (Some(name), Some(permissions)) = (name, permissions) else {
        return Err(errors.into());
    };
    let role = service::roles::create(&state, &access, name, description, permissions).await?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

/// Get a role.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/roles/{roleId}", operation_id = "getRole", tag = "Roles",
    params(("organizationId" = uuid::Uuid, Path), ("roleId" = i64, Path)),
    responses(
        (status = 200, description = "The role", body = RoleView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks org:read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such role within reach", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path((id, role)): Path<(String, String)>,
) -> Result<Json<RoleView>, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::OrgRead).await?;
    Ok(Json(
        service::roles::get(&state, &access, role_id(&role)?)
            .await?
            .into(),
    ))
}

/// Change a custom role: its name, description or permissions. System roles cannot change.
#[utoipa::path(
    patch, path = "/api/organizations/{organizationId}/roles/{roleId}", operation_id = "updateRole", tag = "Roles",
    params(("organizationId" = uuid::Uuid, Path), ("roleId" = i64, Path)),
    request_body = RoleInput,
    responses(
        (status = 200, description = "The role", body = RoleView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks roles:manage, a system role, or a permission the caller lacks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such role within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path((id, role)): Path<(String, String)>,
    JsonBody(body, mut errors): JsonBody<RoleInput>,
) -> Result<Json<RoleView>, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::RolesManage).await?;
    let current = service::roles::get(&state, &access, role_id(&role)?).await?;
    if current.is_system() {
        return Err(ApiError::Forbidden("system roles cannot be changed".into()));
    }
    let e = &mut errors;
    let name = body
        .name
        .optional("name", e)
        .and_then(|n| e.check(parse_role_name("name", &n)));
    let description = body
        .description
        .nullable("description", e)
        .map(|d| d.and_then(|d| e.check(parse_description("description", &d))));
    let permissions = body
        .permissions
        .optional("permissions", e)
        .and_then(|p| e.check(parse_permissions("permissions", &p)));
    if let Some(n) = &name {
        if system_roles()
            .iter()
            .any(|r| r.name.eq_ignore_ascii_case(n))
        {
            e.add("name", "reserved", "is the name of a system role");
        }
    }
    errors.into_result()?;
    let change = service::roles::RoleChange {
        name,
        description,
        permissions,
    };
    let next = service::roles::update(&state, &access, current, change).await?;
    Ok(Json(next.into()))
}

/// Delete a custom role that nobody holds.
#[utoipa::path(
    delete, path = "/api/organizations/{organizationId}/roles/{roleId}", operation_id = "deleteRole", tag = "Roles",
    params(("organizationId" = uuid::Uuid, Path), ("roleId" = i64, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks roles:manage, or a system role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such role within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Held by a member, a key or a pending invitation", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path((id, role)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::RolesManage).await?;
    service::roles::delete(&state, &access, role_id(&role)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
