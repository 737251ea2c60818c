//! People on PostgreSQL: users, sessions, members, roles, workspaces, invitations. The behaviour
//! is `sqlite_people.rs`'s; every write of more than one statement is a transaction run on its own
//! task (`detached`), so a caller that goes away cannot leave it half-done.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgbase_domain::people::{parse_permissions, ROLE_ADMIN, ROLE_OWNER};
use orgbase_domain::rules::{self, AccountStep};
use orgbase_domain::{
    Email, Invitation, Member, Organization, OrganizationId, Permissions, Role, SecretHash,
    Session, User, UserId, Workspace,
};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{
    bad, begin, commit, detached, map_err, org_from_row, push_org_values, write_metadata, PgStore,
    ORG_COLUMNS,
};
use crate::{
    like_escape, Acceptance, InvitationStore, MemberPage, MemberQuery, MemberStats, MemberStore,
    NewRole, RoleStore, StoreError, StoreResult, UserStore, WorkspaceStore,
};

fn conflict<T>(constraint: &'static str) -> StoreResult<T> {
    Err(StoreError::Conflict { constraint })
}

const USER_COLUMNS: &str = "id, email, name, password_hash, created_at, updated_at";

fn user_from_row(r: &PgRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: UserId(r.try_get("id")?),
        email: Email::from_stored(r.try_get("email")?),
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Inserts a user. With `if_new`, an address that is taken already is not an error: answers
/// whether the row was inserted.
async fn insert_user<'c>(ex: impl PgExecutor<'c>, u: &User, if_new: bool) -> StoreResult<bool> {
    let sql = if if_new {
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING"
    } else {
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)"
    };
    let done = sqlx::query(sql)
        .bind(u.id.0)
        .bind(u.email.as_str())
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .bind(u.updated_at)
        .execute(ex)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

async fn user_by_email<'c>(ex: impl PgExecutor<'c>, email: &str) -> StoreResult<Option<User>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
    ))
    .bind(email)
    .fetch_optional(ex)
    .await
    .map_err(map_err)?;
    row.as_ref().map(user_from_row).transpose().map_err(map_err)
}

/// A member with its roles and workspaces, each in ascending order.
const MEMBER_SELECT: &str = "SELECT m.id, m.organization_id, m.user_id, u.name, u.email, \
    ARRAY(SELECT r.role_id FROM member_roles r WHERE r.member_id = m.id ORDER BY r.role_id) \
    AS roles, \
    ARRAY(SELECT w.workspace_id FROM member_workspaces w WHERE w.member_id = m.id \
    ORDER BY w.workspace_id) AS workspaces, \
    m.created_at, m.updated_at FROM members m JOIN users u ON u.id = m.user_id";

fn member_from_row(r: &PgRow) -> Result<Member, sqlx::Error> {
    Ok(Member {
        id: r.try_get("id")?,
        organization_id: OrganizationId(r.try_get("organization_id")?),
        user_id: UserId(r.try_get("user_id")?),
        name: r.try_get("name")?,
        email: Email::from_stored(r.try_get("email")?),
        roles: r.try_get("roles")?,
        workspaces: r.try_get("workspaces")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

async fn member_by_id<'c>(
    ex: impl PgExecutor<'c>,
    org: OrganizationId,
    id: i64,
) -> StoreResult<Member> {
    let row = sqlx::query(&format!(
        "{MEMBER_SELECT} WHERE m.id = $1 AND m.organization_id = $2"
    ))
    .bind(id)
    .bind(org.0)
    .fetch_one(ex)
    .await
    .map_err(map_err)?;
    member_from_row(&row).map_err(map_err)
}

async fn member_by_user<'c>(
    ex: impl PgExecutor<'c>,
    org: OrganizationId,
    user: UserId,
) -> StoreResult<Option<Member>> {
    let row = sqlx::query(&format!(
        "{MEMBER_SELECT} WHERE m.organization_id = $1 AND m.user_id = $2"
    ))
    .bind(org.0)
    .bind(user.0)
    .fetch_optional(ex)
    .await
    .map_err(map_err)?;
    row.as_ref()
        .map(member_from_row)
        .transpose()
        .map_err(map_err)
}

/// Locks a member's row for the rest of the transaction; `NotFound` unless it is the
/// organization's.
async fn lock_member(conn: &mut PgConnection, org: OrganizationId, id: i64) -> StoreResult<()> {
    sqlx::query("SELECT 1 FROM members WHERE id = $1 AND organization_id = $2 FOR UPDATE")
        .bind(id)
        .bind(org.0)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Inserts a membership with its roles; answers the new member id.
async fn insert_member(
    conn: &mut PgConnection,
    org: OrganizationId,
    user: UserId,
    roles: &[i64],
    at: DateTime<Utc>,
) -> StoreResult<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO members (organization_id, user_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $3) RETURNING id",
    )
    .bind(org.0)
    .bind(user.0)
    .bind(at)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    add_roles(conn, org, id, roles).await?;
    Ok(id)
}

async fn add_roles(
    conn: &mut PgConnection,
    org: OrganizationId,
    member: i64,
    roles: &[i64],
) -> StoreResult<()> {
    if roles.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO member_roles (organization_id, role_id, member_id) \
         SELECT $1, r, $3 FROM unnest($2::bigint[]) AS r ON CONFLICT DO NOTHING",
    )
    .bind(org.0)
    .bind(roles)
    .bind(member)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn set_roles(
    conn: &mut PgConnection,
    org: OrganizationId,
    member: i64,
    roles: &[i64],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM member_roles WHERE member_id = $1")
        .bind(member)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    add_roles(conn, org, member, roles).await
}

/// Replaces a member's workspaces; one that is not the organization's is
/// `Conflict { constraint: "foreign_key" }`.
async fn set_workspaces(
    conn: &mut PgConnection,
    org: OrganizationId,
    member: i64,
    workspaces: &[Uuid],
) -> StoreResult<()> {
    let mut wanted = workspaces.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    // Locked (in id order) before the member's rows are touched: a workspace being deleted at
    // the same time either goes first or waits, and never waits on this in a cycle.
    let found: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM workspaces WHERE organization_id = $1 AND id = ANY($2) \
         ORDER BY id FOR KEY SHARE",
    )
    .bind(org.0)
    .bind(&wanted)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    if found.len() != wanted.len() {
        return conflict("foreign_key");
    }
    sqlx::query("DELETE FROM member_workspaces WHERE member_id = $1")
        .bind(member)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    if wanted.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO member_workspaces (organization_id, workspace_id, member_id) \
         SELECT $1, w, $3 FROM unnest($2::uuid[]) AS w",
    )
    .bind(org.0)
    .bind(&wanted)
    .bind(member)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

const ROLE_COLUMNS: &str =
    "id, organization_id, name, description, permissions, created_at, updated_at";

fn role_from_row(r: &PgRow) -> Result<Role, sqlx::Error> {
    let names = r.try_get::<Json<Vec<String>>, _>("permissions")?.0;
    let permissions =
        parse_permissions("permissions", &names).map_err(|e| bad("permission", &e.message))?;
    Ok(Role {
        id: r.try_get("id")?,
        organization_id: Some(OrganizationId(r.try_get("organization_id")?)),
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        permissions,
        created_at: Some(r.try_get("created_at")?),
        updated_at: Some(r.try_get("updated_at")?),
    })
}

fn permissions_json(p: Permissions) -> Json<Vec<&'static str>> {
    Json(p.names())
}

const WS_COLUMNS: &str = "id, organization_id, name, created_at, updated_at";

fn ws_from_row(r: &PgRow) -> Result<Workspace, sqlx::Error> {
    Ok(Workspace {
        id: r.try_get("id")?,
        organization_id: OrganizationId(r.try_get("organization_id")?),
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const INV_COLUMNS: &str = "id, organization_id, email, name, roles, token_hash, invited_by, \
    created_at, expires_at, accepted_at, revoked_at, sends";

fn inv_from_row(r: &PgRow) -> Result<Invitation, sqlx::Error> {
    Ok(Invitation {
        id: r.try_get("id")?,
        organization_id: OrganizationId(r.try_get("organization_id")?),
        email: Email::from_stored(r.try_get("email")?),
        name: r.try_get("name")?,
        roles: r.try_get::<Json<Vec<i64>>, _>("roles")?.0,
        hash: SecretHash::from_stored(r.try_get("token_hash")?),
        invited_by: r.try_get("invited_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        accepted_at: r.try_get("accepted_at")?,
        revoked_at: r.try_get("revoked_at")?,
        sends: r.try_get("sends")?,
    })
}

/// The organization's invitation `id`, its row locked for the rest of the transaction.
async fn lock_invitation(
    conn: &mut PgConnection,
    org: Option<OrganizationId>,
    id: Uuid,
) -> StoreResult<Invitation> {
    let row = sqlx::query(&format!(
        "SELECT {INV_COLUMNS} FROM invitations WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    let inv = inv_from_row(&row).map_err(map_err)?;
    if org.is_some_and(|o| o != inv.organization_id) {
        return Err(StoreError::NotFound);
    }
    Ok(inv)
}

/// The filters of a member listing, after `FROM members m JOIN users u …`.
fn push_member_filters(b: &mut QueryBuilder<'_, Postgres>, q: &MemberQuery) {
    let org = q.organization_id.0;
    b.push(" WHERE m.organization_id = ").push_bind(org);
    if let Some(r) = q.role {
        b.push(" AND m.id IN (SELECT member_id FROM member_roles WHERE organization_id = ")
            .push_bind(org)
            .push(" AND role_id = ")
            .push_bind(r)
            .push(")");
    }
    if let Some(w) = q.workspace {
        b.push(" AND m.id IN (SELECT member_id FROM member_workspaces WHERE organization_id = ")
            .push_bind(org)
            .push(" AND workspace_id = ")
            .push_bind(w)
            .push(")");
    }
    if let Some(text) = &q.q {
        let pattern = format!("%{}%", like_escape(text));
        b.push(" AND (u.name ILIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR u.email ILIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let mut tx = begin(&self.pool).await.map_err(map_err)?;
        insert_user(&mut *tx, user, false).await?;
        commit(tx).await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.0)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        user_from_row(&row).map_err(map_err)
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        user_by_email(&self.pool, email.as_str()).await
    }

    async fn insert_session(&self, s: &Session) -> StoreResult<()> {
        let mut tx = begin(&self.pool).await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, token_hash, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(s.id)
        .bind(s.user_id.0)
        .bind(s.hash.as_str())
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.revoked_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        commit(tx).await
    }

    async fn find_session(&self, hash: &SecretHash) -> StoreResult<Option<(Session, User)>> {
        let row = sqlx::query(
            "SELECT s.id AS session_id, s.token_hash, s.created_at AS session_created_at, \
             s.expires_at, s.revoked_at, u.id, u.email, u.name, u.password_hash, u.created_at, \
             u.updated_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1",
        )
        .bind(hash.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let Some(r) = row else {
            return Ok(None);
        };
        let read = || -> Result<(Session, User), sqlx::Error> {
            let user = user_from_row(&r)?;
            let session = Session {
                id: r.try_get("session_id")?,
                user_id: user.id,
                hash: SecretHash::from_stored(r.try_get("token_hash")?),
                created_at: r.try_get("session_created_at")?,
                expires_at: r.try_get("expires_at")?,
                revoked_at: r.try_get("revoked_at")?,
            };
            Ok((session, user))
        };
        read().map(Some).map_err(map_err)
    }

    async fn revoke_session(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = begin(&self.pool).await.map_err(map_err)?;
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        commit(tx).await
    }

    async fn purge_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }
}

#[async_trait]
impl MemberStore for PgStore {
    async fn insert_organization_with_owner(
        &self,
        org: &Organization,
        owner: &User,
    ) -> StoreResult<(Organization, Member)> {
        let (pool, mut org, owner) = (self.pool.clone(), org.clone(), owner.clone());
        detached(async move {
            let mut tx = begin(&pool).await.map_err(map_err)?;
            // Whoever has the address already (even one who got it a moment ago) is the owner.
            insert_user(&mut *tx, &owner, true).await?;
            let user = user_by_email(&mut *tx, owner.email.as_str())
                .await?
                .ok_or_else(|| StoreError::msg("the owner's user row vanished"))?;
            org.owner = Some(user.id);
            let mut b = QueryBuilder::new(format!(
                "INSERT INTO organizations ({ORG_COLUMNS}) VALUES ("
            ));
            push_org_values(&mut b, &org);
            b.push(")");
            b.build().execute(&mut *tx).await.map_err(map_err)?;
            write_metadata(&mut tx, &org, false)
                .await
                .map_err(map_err)?;
            let id = insert_member(&mut tx, org.id, user.id, &[ROLE_OWNER], org.created_at).await?;
            let member = member_by_id(&mut *tx, org.id, id).await?;
            commit(tx).await?;
            Ok((org, member))
        })
        .await
    }

    async fn transfer_ownership(
        &self,
        org_id: OrganizationId,
        to_member: i64,
        at: DateTime<Utc>,
    ) -> StoreResult<Organization> {
        let pool = self.pool.clone();
        let cache = self.cache.clone();
        let generation = cache.org_generation();
        detached(async move {
            let mut tx = begin(&pool).await.map_err(map_err)?;
            // Transfers of one organization take turns on its row.
            let row = sqlx::query(&format!(
                "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1 FOR UPDATE"
            ))
            .bind(org_id.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            let org = org_from_row(&row).map_err(map_err)?;
            // The members whose roles change, locked in id order before their roles are touched,
            // as `update_member` locks its member first: neither can wait on the other in a cycle.
            sqlx::query(
                "SELECT id FROM members WHERE organization_id = $1 AND (id = $2 OR id IN \
                 (SELECT member_id FROM member_roles WHERE organization_id = $1 AND role_id = $3)) \
                 ORDER BY id FOR UPDATE",
            )
            .bind(org_id.0)
            .bind(to_member)
            .bind(ROLE_OWNER)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            let target = member_by_id(&mut *tx, org_id, to_member).await?;
            if org.owner == Some(target.user_id) && target.is_owner() {
                return Ok(org);
            }
            // Every current holder of the owner role steps down to admin.
            let holders: Vec<i64> = sqlx::query_scalar(
                "DELETE FROM member_roles WHERE organization_id = $1 AND role_id = $2 \
                 RETURNING member_id",
            )
            .bind(org_id.0)
            .bind(ROLE_OWNER)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query(
                "INSERT INTO member_roles (organization_id, role_id, member_id) \
                 SELECT $1, $2, m FROM unnest($3::bigint[]) AS m ON CONFLICT DO NOTHING",
            )
            .bind(org_id.0)
            .bind(ROLE_ADMIN)
            .bind(&holders)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            add_roles(&mut tx, org_id, to_member, &[ROLE_OWNER]).await?;
            sqlx::query(
                "UPDATE members SET updated_at = $2 WHERE organization_id = $1 \
                 AND (id = $3 OR id = ANY($4))",
            )
            .bind(org_id.0)
            .bind(at)
            .bind(to_member)
            .bind(&holders)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            let next = Organization {
                owner: Some(target.user_id),
                version: org.version + 1,
                updated_at: at,
                ..org
            };
            sqlx::query(
                "UPDATE organizations SET owner_id = $2, version = $3, updated_at = $4 \
                 WHERE id = $1",
            )
            .bind(org_id.0)
            .bind(target.user_id.0)
            .bind(next.version)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            super::cache::notify(&mut tx, &super::cache::org_notice(org_id, next.version))
                .await
                .map_err(map_err)?;
            commit(tx).await?;
            cache.wrote_org(&next, generation);
            Ok(next)
        })
        .await
    }

    async fn get_member(&self, org: OrganizationId, id: i64) -> StoreResult<Member> {
        member_by_id(&self.pool, org, id).await
    }

    async fn find_member(&self, org: OrganizationId, user: UserId) -> StoreResult<Option<Member>> {
        member_by_user(&self.pool, org, user).await
    }

    async fn list_members(&self, q: &MemberQuery) -> StoreResult<MemberPage> {
        // One snapshot for the count and the page, so that they agree.
        let mut tx = begin(&self.pool).await.map_err(map_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut count =
            QueryBuilder::new("SELECT count(*) FROM members m JOIN users u ON u.id = m.user_id");
        push_member_filters(&mut count, q);
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut page = QueryBuilder::new(MEMBER_SELECT);
        push_member_filters(&mut page, q);
        page.push(" ORDER BY m.id LIMIT ")
            .push_bind(i64::from(q.limit))
            .push(" OFFSET ")
            .push_bind(i64::try_from(q.offset).unwrap_or(i64::MAX));
        let rows = page.build().fetch_all(&mut *tx).await.map_err(map_err)?;
        commit(tx).await?;
        let members = rows
            .iter()
            .map(member_from_row)
            .collect::<Result<_, _>>()
            .map_err(map_err)?;
        Ok(MemberPage {
            members,
            total: total as u64,
        })
    }

    async fn member_stats(&self, org: OrganizationId) -> StoreResult<MemberStats> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT members, version, content_version FROM member_stats \
             WHERE organization_id = $1",
        )
        .bind(org.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row
            .map(|(members, version, content_version)| MemberStats {
                members: members as u64,
                version: version as u64,
                content_version: content_version as u64,
            })
            .unwrap_or_default())
    }

    async fn member_ids(&self, org: OrganizationId) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar("SELECT id FROM members WHERE organization_id = $1 ORDER BY id")
            .bind(org.0)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn members_by_ids(&self, org: OrganizationId, ids: &[i64]) -> StoreResult<Vec<Member>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "{MEMBER_SELECT} WHERE m.organization_id = $1 AND m.id = ANY($2) ORDER BY m.id"
        ))
        .bind(org.0)
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(member_from_row)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn update_member(
        &self,
        org: OrganizationId,
        id: i64,
        roles: &[i64],
        workspaces: &[Uuid],
        at: DateTime<Utc>,
    ) -> StoreResult<Member> {
        let (pool, roles, workspaces) = (self.pool.clone(), roles.to_vec(), workspaces.to_vec());
        detached(async move {
            let mut tx = begin(&pool).await.map_err(map_err)?;
            lock_member(&mut tx, org, id).await?;
            member_by_id(&mut *tx, org, id)
                .await?
                .check_roles_change(&roles)?;
            set_roles(&mut tx, org, id, &roles).await?;
            set_workspaces(&mut tx, org, id, &workspaces).await?;
            sqlx::query("UPDATE members SET updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let member = member_by_id(&mut *tx, org, id).await?;
            commit(tx).await?;
            Ok(member)
        })
        .await
    }

    async fn remove_member(&self, org: OrganizationId, id: i64) -> StoreResult<Member> {
        let pool = self.pool.clone();
        detached(async move {
            let mut tx = begin(&pool).await.map_err(map_err)?;
            lock_member(&mut tx, org, id).await?;
            let current = member_by_id(&mut *tx, org, id).await?;
            current.check_removable()?;
            sqlx::query("DELETE FROM members WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            commit(tx).await?;
            Ok(current)
        })
        .await
    }
}

#[async_trait]
impl RoleStore for PgStore {
    async fn list_roles(&self, org: OrganizationId) -> StoreResult<Vec<Role>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROLE_COLUMNS} FROM roles WHERE organization_id = $1 ORDER BY id"
        ))
        .bind(org.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(role_from_row)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn get_role(&self, org: OrganizationId, id: i64) -> StoreResult<Role> {
        let row = sqlx::query(&format!(
            "SELECT {ROLE_COLUMNS} FROM roles WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org.0)
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        role_from_row(&row).map_err(map_err)
    }

    async fn insert_role(&self, role: &NewRole) -> StoreResult<Role> {
        let mut tx = begin(&self.pool).await.map_err(map_err)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO roles (organization_id, name, description, permissions, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(role.organization_id.0)
        .bind(&role.name)
        .bind(&role.description)
        .bind(permissions_json(role.permissions))
        .bind(role.at)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        if let Some(s) = crate::audit::staged() {
            s.resolve_targets(vec![id.to_string()]);
        }
        commit(tx).await?;
        Ok(Role {
            id,
            organization_id: Some(role.organization_id),
            name: role.name.clone(),
            description: role.description.clone(),
            permissions: role.permissions,
            created_at: Some(role.at),
            updated_at: Some(role.at),
        })
    }

    async fn update_role(&self, role: &Role) -> StoreResult<()> {
        let mut tx = begin(&self.pool).await.map_err(map_err)?;
        let org = role
            .organization_id
            .ok_or_else(|| StoreError::msg("a system role cannot be stored"))?;
        let done = sqlx::query(
            "UPDATE roles SET name = $3, description = $4, permissions = $5, updated_at = $6 \
             WHERE organization_id = $1 AND id = $2",
        )
        .bind(org.0)
        .bind(role.id)
        .bind(&role.name)
        .bind(&role.description)
        .bind(permissions_json(role.permissions))
        .bind(role.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        commit(tx).await
    }

    async fn delete_role(&self, org: OrganizationId, id: i64) -> StoreResult<()> {
        let pool = self.pool.clone();
        detached(async move {
            let mut tx = begin(&pool).await.map_err(map_err)?;
            let held: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM member_roles WHERE organization_id = $1 \
                 AND role_id = $2) \
                 + (SELECT count(*) FROM api_keys WHERE organization_id = $1 \
                    AND revoked_at IS NULL AND roles @> to_jsonb($2::bigint)) \
                 + (SELECT count(*) FROM invitations WHERE organization_id = $1 \
                    AND accepted_at IS NULL AND revoked_at IS NULL \
                    AND roles @> to_jsonb($2::bigint))",
            )
            .bind(org.0)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            rules::check_role_unused(held as u64)?;
            let done = sqlx::query("DELETE FROM roles WHERE organization_id = $1 AND id = $2")
                .bind(org.0)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            commit(tx).await
        })
        .await
    }
}

#[async_trait]
impl WorkspaceStore for PgStore {
    async fn list_workspaces(&self, org: OrganizationId) -> StoreResult<Vec<Workspace>> {
        let rows = sqlx::query(&format!(
            "SELECT {WS_COLUMNS} FROM workspaces WHERE organization_id = $1 ORDER BY id"
        ))
        .bind(org.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(ws_from_row)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn get_workspace(&self, org: OrganizationId, id: Uuid) -> StoreResult<Workspace> {
        let row = sqlx::query(&format!(
            "SELECT {WS_COLUMNS} FROM workspaces WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org.0)
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        ws_from_row(&row).map_err(map_err)
    }

    async fn insert_workspace(&self, ws: &Workspace) -> StoreResult<()> {
        let mut tx = begin(&self.pool).await.map_err(map_err)?;
        sqlx::query(&format!(
            "INSERT INTO workspaces ({WS_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(ws.id)
        .bind(ws.organization_id.0)
        .bind(&ws.name)
        .bind(ws.created_at)
        .bind(ws.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        commit(tx).await
    }

    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<()> {
        let mut tx = begin(&self.pool).await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE workspaces SET name = $3, updated_at = $4 \
             WHERE organization_id = $1 AND id = $2",
        )
        .bind(ws.organization_id.0)
        .bind(ws.id)
        .bind(&ws.name)
        .bind(ws.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        commit(tx).await
    }

    async fn delete_workspace(&self, org: OrganizationId, id: Uuid) -> StoreResult<()> {
        let mut tx = begin(&self.pool).await.map_err(map_err)?;
        // Members lose it by cascade (member_workspaces).
        let done = sqlx::query("DELETE FROM workspaces WHERE organization_id = $1 AND id = $2")
            .bind(org.0)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        commit(tx).await
    }
}

#[async_trait]
impl InvitationStore for PgStore {
    async fn insert_invitation(&self, inv: &Invitation, owner_setup: bool) -> StoreResult<()> {
        let (pool, inv) = (self.pool.clone(), inv.clone());
        detached(async move {
            let mut tx = begin(&pool).await.map_err(map_err)?;
            let org = inv.organization_id.0;
            if !owner_setup {
                let member: Option<i64> = sqlx::query_scalar(
                    "SELECT m.id FROM members m JOIN users u ON u.id = m.user_id \
                     WHERE m.organization_id = $1 AND u.email = $2",
                )
                .bind(org)
                .bind(inv.email.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                Invitation::check_invitee(member.is_some(), owner_setup)?;
            }
            // An expired invitation no longer holds the address.
            sqlx::query(
                "UPDATE invitations SET revoked_at = $3 WHERE organization_id = $1 AND email = $2 \
                 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= $3",
            )
            .bind(org)
            .bind(inv.email.as_str())
            .bind(inv.created_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query(&format!(
                "INSERT INTO invitations ({INV_COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .bind(inv.id)
            .bind(org)
            .bind(inv.email.as_str())
            .bind(&inv.name)
            .bind(Json(&inv.roles))
            .bind(inv.hash.as_str())
            .bind(&inv.invited_by)
            .bind(inv.created_at)
            .bind(inv.expires_at)
            .bind(inv.accepted_at)
            .bind(inv.revoked_at)
            .bind(inv.sends)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            commit(tx).await
        })
        .await
    }

    async fn list_invitations(
        &self,
        org: OrganizationId,
        all: bool,
    ) -> StoreResult<Vec<Invitation>> {
        let pending = if all {
            ""
        } else {
            " AND accepted_at IS NULL AND revoked_at IS NULL"
        };
        let rows = sqlx::query(&format!(
            "SELECT {INV_COLUMNS} FROM invitations WHERE organization_id = $1{pending} \
             ORDER BY id DESC"
        ))
        .bind(org.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(inv_from_row)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }

    async fn get_invitation(&self, org: OrganizationId, id: Uuid) -> StoreResult<Invitation> {
        let row = sqlx::query(&format!(
            "SELECT {INV_COLUMNS} FROM invitations WHERE id = $1 AND organization_id = $2"
        ))
        .bind(id)
        .bind(org.0)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        inv_from_row(&row).map_err(map_err)
    }

    async fn find_invitation(&self, hash: &SecretHash) -> StoreResult<Option<Invitation>> {
        let row = sqlx::query(&format!(
            "SELECT {INV_COLUMNS} FROM invitations WHERE token_hash = $1"
        ))
        .bind(hash.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(inv_from_row).transpose().map_err(map_err)
    }

    async fn revoke_invitation(
        &self,
        org: OrganizationId,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> StoreResult<Invitation> {
        let pool = self.pool.clone();
        detached(async move {
            let mut tx = begin(&pool).await.map_err(map_err)?;
            let inv = lock_invitation(&mut tx, Some(org), id).await?;
            inv.check_open()?;
            sqlx::query("UPDATE invitations SET revoked_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            commit(tx).await?;
            Ok(Invitation {
                revoked_at: Some(at),
                ..inv
            })
        })
        .await
    }

    async fn reissue_invitation(
        &self,
        org: OrganizationId,
        id: Uuid,
        hash: &SecretHash,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<Invitation> {
        let (pool, hash) = (self.pool.clone(), hash.clone());
        detached(async move {
            let mut tx = begin(&pool).await.map_err(map_err)?;
            let inv = lock_invitation(&mut tx, Some(org), id).await?;
            inv.check_open()?;
            let sends: i32 = sqlx::query_scalar(
                "UPDATE invitations SET token_hash = $2, expires_at = $3, sends = sends + 1 \
                 WHERE id = $1 RETURNING sends",
            )
            .bind(id)
            .bind(hash.as_str())
            .bind(expires_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            commit(tx).await?;
            Ok(Invitation {
                hash,
                expires_at,
                sends,
                ..inv
            })
        })
        .await
    }

    async fn accept_invitation(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        acceptance: &Acceptance,
    ) -> StoreResult<Member> {
        let (pool, acceptance) = (self.pool.clone(), acceptance.clone());
        detached(async move {
            let mut tx = begin(&pool).await.map_err(map_err)?;
            // Concurrent accepts queue on the row; each then sees what the one before did.
            let inv = lock_invitation(&mut tx, None, id).await?;
            inv.check_acceptable(at)?;
            let consumed = sqlx::query(
                "UPDATE invitations SET accepted_at = $2 WHERE id = $1 \
                 AND accepted_at IS NULL AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if consumed.rows_affected() != 1 {
                return conflict("invitation_not_pending");
            }
            let mut existing = user_by_email(&mut *tx, inv.email.as_str()).await?;
            let user_id = loop {
                match inv.account_step(existing.as_ref(), &acceptance)? {
                    AccountStep::Keep(id) => break id,
                    AccountStep::SetPassword { id, password_hash } => {
                        // Only on an account that still has none: one with a password keeps it.
                        sqlx::query(
                            "UPDATE users SET password_hash = $2, updated_at = $3 \
                             WHERE id = $1 AND password_hash IS NULL",
                        )
                        .bind(id.0)
                        .bind(&password_hash)
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                        break id;
                    }
                    AccountStep::Create(user) => {
                        if insert_user(&mut *tx, &user, true).await? {
                            break user.id;
                        }
                        // Someone took the address meanwhile: theirs is the account, decided
                        // on again as it is now.
                        existing = user_by_email(&mut *tx, inv.email.as_str()).await?;
                        if existing.is_none() {
                            return Err(StoreError::NotFound);
                        }
                    }
                }
            };
            let org = inv.organization_id;
            let member = match member_by_user(&mut *tx, org, user_id).await? {
                Some(m) => m,
                None => {
                    let mid =
                        insert_member(&mut tx, org, user_id, &inv.granted_roles()?, at).await?;
                    member_by_id(&mut *tx, org, mid).await?
                }
            };
            commit(tx).await?;
            Ok(member)
        })
        .await
    }
}
