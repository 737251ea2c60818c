//! `/api/organizations/{organizationId}/members…` in the seed's shapes (`{success, message,
//! data}`, the members list as a page-numbered paginator), plus `…/me` and the ownership
//! transfer.
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use orgbase_domain::{Member, OrganizationId, Permission, ValidationErrors};
use orgbase_store::MemberQuery;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::directory::PageKey;
use crate::error::{ApiError, Problem};
use crate::extract::org_id;
use crate::extract::{Field, JsonBody};
use crate::native::views::{rfc3339, Done, Envelope, OrganizationView};
use crate::service;
use crate::AppState;

pub const DEFAULT_PER_PAGE: u32 = 15;
pub const MAX_PER_PAGE: u32 = 100;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The member id (an integer, as in the source API).
    pub id: i64,
    pub user_id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub email: String,
    /// Role ids: 1 owner, 2 admin, 3 member, 4 billing, 5 viewer, 100+ custom.
    pub roles: Vec<i64>,
    pub workspaces: Vec<Uuid>,
    pub is_owner: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            is_owner: m.is_owner(),
            id: m.id,
            user_id: m.user_id.0,
            organization_id: m.organization_id.0,
            name: m.name,
            email: m.email.as_str().to_owned(),
            roles: m.roles,
            workspaces: m.workspaces,
            created_at: rfc3339(&m.created_at),
            updated_at: rfc3339(&m.updated_at),
        }
    }
}

/// A page of members, as the source API's paginator.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPageView {
    pub current_page: u64,
    pub data: Vec<MemberView>,
    pub per_page: u32,
    pub total: u64,
    pub last_page: u64,
    /// Position of the first member on this page (1-based); null on an empty page.
    pub from: Option<u64>,
    pub to: Option<u64>,
}

fn parse_member_query(org: OrganizationId, raw: Option<&str>) -> Result<MemberQuery, ApiError> {
    let mut page: u64 = 1;
    let mut per_page = DEFAULT_PER_PAGE;
    let mut q = MemberQuery {
        organization_id: org,
        offset: 0,
        limit: per_page,
        role: None,
        workspace: None,
        q: None,
    };
    let mut e = ValidationErrors::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "page" => match v.parse::<u64>() {
                Ok(n) if (1..=1_000_000_000).contains(&n) => page = n,
                _ => e.add("page", "out_of_range", "must be an integer of 1 or more"),
            },
            "per_page" => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_PER_PAGE).contains(&n) => per_page = n,
                _ => e.add(
                    "per_page",
                    "out_of_range",
                    format!("must be an integer from 1 to {MAX_PER_PAGE}"),
                ),
            },
            "role" => match v.parse::<i64>() {
                Ok(n) if n > 0 => q.role = Some(n),
                _ => e.add("role", "invalid_value", "must be a role id"),
            },
            "workspace" => match v.parse::<Uuid>() {
                Ok(w) => q.workspace = Some(w),
                Err(_) => e.add(
                    "workspace",
                    "invalid_value",
                    "must be a workspace id (UUID)",
                ),
            },
            "q" => {
                let t = orgbase_domain::validation::trim_pattern_space(&v);
                if t.is_empty() || t.chars().count() > 100 || t.contains('\0') {
                    e.add("q", "invalid_length", "must be 1–100 characters");
                } else {
                    q.q = Some(t.to_owned());
                }
            }
            other => e.add(
                other,
                "unknown_parameter",
                "is not a parameter of this list",
            ),
        }
    }
    e.into_result()?;
    q.limit = per_page;
    q.offset = (page - 1).saturating_mul(per_page as u64);
    Ok(q)
}

/// List the members of an organization, a page at a time.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/members", operation_id = "listMembers", tag = "Members",
    params(
        ("organizationId" = Uuid, Path, description = "ID of the organization"),
        ("page" = Option<u64>, Query, minimum = 1, maximum = 1_000_000_000, description = "Page number, from 1 (default 1)"),
        ("per_page" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Members per page, 1–100 (default 15)"),
        ("role" = Option<i64>, Query, minimum = 1, description = "Only members holding this role"),
        ("workspace" = Option<Uuid>, Query, description = "Only members of this workspace"),
        ("q" = Option<String>, Query, min_length = 1, max_length = 100, description = "Case-insensitive substring of the name or e-mail"),
    ),
    responses(
        (status = 200, description = "List of organization members", body = Envelope<MemberPageView>),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks members:read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters, each named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::MembersRead).await?;
    let q = parse_member_query(access.org.id, raw.as_deref())?;
    // The organization's numbers first: while they are those of a cached answer, that is the
    // answer (see `directory`).
    let stats = service::members::stats(&state, &access).await?;
    let key = PageKey {
        organization: q.organization_id,
        offset: q.offset,
        limit: q.limit,
        role: q.role,
        workspace: q.workspace,
        q: q.q.clone(),
    };
    if let Some(body) = state.members.cached_page(&key, stats.content_version) {
        return Ok(json_body(body));
    }
    let page = service::members::list(&state, &access, &q, stats).await?;
    let per_page = q.limit;
    let current_page = q.offset / per_page as u64 + 1;
    let n = page.members.len() as u64;
    let Json(envelope) = Envelope::ok(
        "All Organization Members",
        MemberPageView {
            current_page,
            per_page,
            total: page.total,
            last_page: page.total.div_ceil(per_page as u64).max(1),
            from: (n > 0).then_some(q.offset + 1),
            to: (n > 0).then_some(q.offset + n),
            data: page.members.into_iter().map(MemberView::from).collect(),
        },
    );
    let body = Bytes::from(serde_json::to_vec(&envelope).map_err(ApiError::internal)?);
    state
        .members
        .keep_page(key, stats.content_version, body.clone());
    Ok(json_body(body))
}

/// A JSON answer already serialized.
fn json_body(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn member_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(ApiError::NotFound)
}

/// Get one member.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/members/{memberId}", operation_id = "getMember", tag = "Members",
    params(("organizationId" = Uuid, Path), ("memberId" = i64, Path)),
    responses(
        (status = 200, description = "The member", body = Envelope<MemberView>),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks members:read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization or member within reach", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path((id, member)): Path<(String, String)>,
) -> Result<Json<Envelope<MemberView>>, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::MembersRead).await?;
    let m = service::members::get(&state, &access, member_id(&member)?).await?;
    Ok(Envelope::ok("Member", m.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct UpdateMember {
    /// Array of workspace IDs (this organization's).
    #[schema(required = true, value_type = Vec<Uuid>)]
    pub workspaces: Field<Vec<String>>,
    /// Array of IAM role IDs (system 2–5 or this organization's custom roles; at least one).
    #[schema(required = true, value_type = Vec<i64>, min_items = 1)]
    pub roles: Field<Vec<i64>>,
}

/// Update a member's roles and workspaces in an organization.
#[utoipa::path(
    put, path = "/api/organizations/{organizationId}/members/{memberId}", operation_id = "updateMember", tag = "Members",
    params(
        ("organizationId" = Uuid, Path, description = "ID of the organization"),
        ("memberId" = i64, Path, description = "ID of the member to be updated"),
    ),
    request_body = UpdateMember,
    responses(
        (status = 200, description = "Member updated successfully", body = Envelope<MemberView>),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks members:manage, or would grant more than the caller holds", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization or member within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The owner cannot be demoted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields; unknown workspace or role ids named", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path((id, member)): Path<(String, String)>,
    JsonBody(body, mut errors): JsonBody<UpdateMember>,
) -> Result<Json<Envelope<MemberView>>, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::MembersManage).await?;
    let target = service::members::get(&state, &access, member_id(&member)?).await?;
    let roles = body.roles.required("roles", &mut errors);
    let workspaces = body.workspaces.required("workspaces", &mut errors);
    let m = service::members::update(&state, &access, target, roles, workspaces, errors).await?;
    Ok(Envelope::ok("Member update", m.into()))
}

/// Delete a member from an organization. The owner cannot be removed.
#[utoipa::path(
    delete, path = "/api/organizations/{organizationId}/members/{memberId}", operation_id = "removeMember", tag = "Members",
    params(
        ("organizationId" = Uuid, Path, description = "ID of the organization"),
        ("memberId" = i64, Path, description = "ID of the member to be deleted"),
    ),
    responses(
        (status = 200, description = "Member deleted successfully", body = Done),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks members:manage", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization or member within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The owner cannot be removed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn remove(
    State(state): State<AppState>,
    who: Principal,
    Path((id, member)): Path<(String, String)>,
) -> Result<Json<Done>, ApiError> {
    let access = service::load_with(&state, &who, org_id(&id)?, Permission::MembersManage).await?;
    service::members::remove(&state, &access, member_id(&member)?).await?;
    Ok(Done::ok("Member deleted successfully"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    #[serde(flatten)]
    pub member: MemberView,
    /// What the caller may do in this organization.
    pub permissions: Vec<&'static str>,
}

/// The caller's own membership of an organization, with what it may do there.
#[utoipa::path(
    get, path = "/api/organizations/{organizationId}/me", operation_id = "getMyMembership", tag = "Members",
    params(("organizationId" = Uuid, Path)),
    responses(
        (status = 200, description = "The caller's membership", body = Envelope<MeView>),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A key, not a person", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a member of this organization", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn me(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Envelope<MeView>>, ApiError> {
    let access = service::load(&state, &who, org_id(&id)?).await?;
    let Some(member) = access.member else {
        return Err(ApiError::Forbidden(
            "this answers for a person's membership, not for a key".into(),
        ));
    };
    Ok(Envelope::ok(
        "Member",
        MeView {
            member: member.into(),
            permissions: access.permissions.names(),
        },
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct TransferOwnership {
    /// The member who becomes the owner. The previous owner stays, as an admin.
    #[schema(required = true, value_type = i64)]
    pub member_id: Field<i64>,
}

/// Hand the organization to another member (the owner or the platform).
#[utoipa::path(
    post, path = "/api/organizations/{organizationId}/transfer-ownership", operation_id = "transferOwnership", tag = "Members",
    params(("organizationId" = Uuid, Path)),
    request_body = TransferOwnership,
    responses(
        (status = 200, description = "The organization, with its new owner", body = OrganizationView),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such member", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn transfer_ownership(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    JsonBody(body, mut errors): JsonBody<TransferOwnership>,
) -> Result<Response, ApiError> {
    let access = service::load(&state, &who, org_id(&id)?).await?;
    if !access.is_owner_or_platform() {
        access.require(Permission::OrgRead)?;
        return Err(ApiError::Forbidden(
            "only the owner or the platform may transfer ownership".into(),
        ));
    }
    let to = body.member_id.required("memberId", &mut errors);
    errors.clone().into_result()?;
    let updated =
        service::members::transfer_ownership(&state, &access, to.expect("validated")).await?;
    let plan = service::plan_terms(&state, &updated.product_plan_id).await?;
    Ok(Json(OrganizationView::new(updated, &plan)).into_response())
}
