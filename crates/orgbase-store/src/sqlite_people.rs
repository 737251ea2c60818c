//! People on SQLite: users, sessions, members, roles, workspaces, invitations.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orgbase_domain::people::{ROLE_ADMIN, ROLE_OWNER};
use orgbase_domain::rules::{self, AccountStep};
use orgbase_domain::{
    Email, Invitation, Member, Organization, OrganizationId, Permissions, Role, SecretHash,
    Session, User, UserId, Workspace,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::{
    map_err, org_from_row, org_values, parse_json, parse_ts, parse_uuid, ts, write_metadata,
    SqliteStore, ORG_COLUMNS,
};
use crate::{
    Acceptance, InvitationStore, MemberPage, MemberQuery, MemberStats, MemberStore, NewRole,
    RoleStore, StoreError, StoreResult, UserStore, WorkspaceStore,
};

const USER_COLUMNS: &str = "id, email, name, password_hash, created_at, updated_at";

fn user_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: UserId(parse_uuid(&r.get::<_, String>(at)?)?),
        email: Email::from_stored(r.get(at + 1)?),
        name: r.get(at + 2)?,
        password_hash: r.get(at + 3)?,
        created_at: parse_ts(&r.get::<_, String>(at + 4)?)?,
        updated_at: parse_ts(&r.get::<_, String>(at + 5)?)?,
    })
}

fn insert_user(conn: &Connection, u: &User) -> StoreResult<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            u.id.to_string(),
            u.email.as_str(),
            u.name,
            u.password_hash,
            ts(&u.created_at),
            ts(&u.updated_at)
        ])
    })
    .map(|_| ())
    .map_err(map_err)
}

fn user_by_email(conn: &Connection, email: &str) -> StoreResult<Option<User>> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = ?1"
    ))
    .and_then(|mut s| s.query_row([email], |r| user_from_row(r, 0)).optional())
    .map_err(map_err)
}

const MEMBER_SELECT: &str = "SELECT m.id, m.organization_id, m.user_id, u.name, u.email, \
    (SELECT group_concat(r.role_id) FROM member_roles r WHERE r.member_id = m.id), \
    (SELECT group_concat(w.workspace_id) FROM member_workspaces w WHERE w.member_id = m.id), \
    m.created_at, m.updated_at FROM members m JOIN users u ON u.id = m.user_id";

fn member_from_row(r: &Row<'_>) -> rusqlite::Result<Member> {
    let roles: Option<String> = r.get(5)?;
    let workspaces: Option<String> = r.get(6)?;
    let mut roles: Vec<i64> = roles
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| super::bad_value("role id", s)))
        .collect::<rusqlite::Result<_>>()?;
    roles.sort_unstable();
    let mut workspaces: Vec<Uuid> = workspaces
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(parse_uuid)
        .collect::<rusqlite::Result<_>>()?;
    workspaces.sort_unstable();
    Ok(Member {
        id: r.get(0)?,
        organization_id: OrganizationId(parse_uuid(&r.get::<_, String>(1)?)?),
        user_id: UserId(parse_uuid(&r.get::<_, String>(2)?)?),
        name: r.get(3)?,
        email: Email::from_stored(r.get(4)?),
        roles,
        workspaces,
        created_at: parse_ts(&r.get::<_, String>(7)?)?,
        updated_at: parse_ts(&r.get::<_, String>(8)?)?,
    })
}

fn member_by_id(conn: &Connection, org: OrganizationId, id: i64) -> StoreResult<Member> {
    conn.prepare_cached(&format!(
        "{MEMBER_SELECT} WHERE m.id = ?1 AND m.organization_id = ?2"
    ))
    .and_then(|mut s| s.query_row(params![id, org.to_string()], member_from_row))
    .map_err(map_err)
}

fn member_by_user(
    conn: &Connection,
    org: OrganizationId,
    user: UserId,
) -> StoreResult<Option<Member>> {
    conn.prepare_cached(&format!(
        "{MEMBER_SELECT} WHERE m.organization_id = ?1 AND m.user_id = ?2"
    ))
    .and_then(|mut s| {
        s.query_row(params![org.to_string(), user.to_string()], member_from_row)
            .optional()
    })
    .map_err(map_err)
}

/// Inserts a membership with its roles; answers the new member id.
fn insert_member(
    conn: &Connection,
    org: OrganizationId,
    user: UserId,
    roles: &[i64],
    at: DateTime<Utc>,
) -> StoreResult<i64> {
    conn.prepare_cached(
        "INSERT INTO members (organization_id, user_id, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?3)",
    )
    .and_then(|mut s| s.execute(params![org.to_string(), user.to_string(), ts(&at)]))
    .map_err(map_err)?;
    let id = conn.last_insert_rowid();
    set_roles(conn, org, id, roles)?;
    Ok(id)
}

fn set_roles(
    conn: &Connection,
    org: OrganizationId,
    member: i64,
    roles: &[i64],
) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM member_roles WHERE member_id = ?1")
        .and_then(|mut s| s.execute([member]))
        .map_err(map_err)?;
    let mut ins = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO member_roles (organization_id, role_id, member_id) \
             VALUES (?1, ?2, ?3)",
        )
        .map_err(map_err)?;
    for r in roles {
        ins.execute(params![org.to_string(), r, member])
            .map_err(map_err)?;
    }
    Ok(())
}

fn set_workspaces(
    conn: &Connection,
    org: OrganizationId,
    member: i64,
    workspaces: &[Uuid],
) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM member_workspaces WHERE member_id = ?1")
        .and_then(|mut s| s.execute([member]))
        .map_err(map_err)?;
    let mut ins = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO member_workspaces (organization_id, workspace_id, member_id) \
             SELECT ?1, id, ?3 FROM workspaces WHERE id = ?2 AND organization_id = ?1",
        )
        .map_err(map_err)?;
    for w in workspaces {
        let n = ins
            .execute(params![org.to_string(), w.to_string(), member])
            .map_err(map_err)?;
        if n == 0 {
            // Not this organization's workspace (or gone meanwhile).
            let exists: Option<i64> = conn
                .prepare_cached(
                    "SELECT 1 FROM member_workspaces WHERE member_id = ?1 AND workspace_id = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![member, w.to_string()], |r| r.get(0))
                        .optional()
                })
                .map_err(map_err)?;
            if exists.is_none() {
                return Err(StoreError::Conflict {
                    constraint: "foreign_key",
                });
            }
        }
    }
    Ok(())
}

const ROLE_COLUMNS: &str =
    "id, organization_id, name, description, permissions, created_at, updated_at";

fn role_from_row(r: &Row<'_>) -> rusqlite::Result<Role> {
    let names: Vec<String> = parse_json(&r.get::<_, String>(4)?)?;
    let permissions = orgbase_domain::people::parse_permissions("permissions", &names)
        .map_err(|e| super::bad_value("permission", &e.message))?;
    Ok(Role {
        id: r.get(0)?,
        organization_id: Some(OrganizationId(parse_uuid(&r.get::<_, String>(1)?)?)),
        name: r.get(2)?,
        description: r.get(3)?,
        permissions,
        created_at: Some(parse_ts(&r.get::<_, String>(5)?)?),
        updated_at: Some(parse_ts(&r.get::<_, String>(6)?)?),
    })
}

fn permissions_json(p: Permissions) -> String {
    serde_json::to_string(&p.names()).unwrap_or_else(|_| "[]".into())
}

const WS_COLUMNS: &str = "id, organization_id, name, created_at, updated_at";

fn ws_from_row(r: &Row<'_>) -> rusqlite::Result<Workspace> {
    Ok(Workspace {
        id: parse_uuid(&r.get::<_, String>(0)?)?,
        organization_id: OrganizationId(parse_uuid(&r.get::<_, String>(1)?)?),
        name: r.get(2)?,
        created_at: parse_ts(&r.get::<_, String>(3)?)?,
        updated_at: parse_ts(&r.get::<_, String>(4)?)?,
    })
}

const INV_COLUMNS: &str = "id, organization_id, email, name, roles, token_hash, invited_by, \
    created_at, expires_at, accepted_at, revoked_at, sends";

fn inv_from_row(r: &Row<'_>) -> rusqlite::Result<Invitation> {
    let opt_ts = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        r.get::<_, Option<String>>(i)?
            .as_deref()
            .map(parse_ts)
            .transpose()
    };
    Ok(Invitation {
        id: parse_uuid(&r.get::<_, String>(0)?)?,
        organization_id: OrganizationId(parse_uuid(&r.get::<_, String>(1)?)?),
        email: Email::from_stored(r.get(2)?),
        name: r.get(3)?,
        roles: parse_json(&r.get::<_, String>(4)?)?,
        hash: SecretHash::from_stored(r.get(5)?),
        invited_by: r.get(6)?,
        created_at: parse_ts(&r.get::<_, String>(7)?)?,
        expires_at: parse_ts(&r.get::<_, String>(8)?)?,
        accepted_at: opt_ts(9)?,
        revoked_at: opt_ts(10)?,
        sends: r.get(11)?,
    })
}

fn inv_by_id(conn: &Connection, id: Uuid) -> StoreResult<Invitation> {
    conn.prepare_cached(&format!(
        "SELECT {INV_COLUMNS} FROM invitations WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id.to_string()], inv_from_row))
    .map_err(map_err)
}

fn inv_in_org(conn: &Connection, org: OrganizationId, id: Uuid) -> StoreResult<Invitation> {
    let inv = inv_by_id(conn, id)?;
    if inv.organization_id != org {
        return Err(StoreError::NotFound);
    }
    Ok(inv)
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let user = user.clone();
        self.write(move |conn| insert_user(conn, &user)).await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<User> {
        self.read_now(move |conn| {
            conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
                .and_then(|mut s| s.query_row([id.to_string()], |r| user_from_row(r, 0)))
                .map_err(map_err)
        })
        .await
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let email = email.as_str().to_owned();
        self.read_now(move |conn| user_by_email(conn, &email)).await
    }

    async fn insert_session(&self, s: &Session) -> StoreResult<()> {
        let s = s.clone();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO sessions (id, user_id, token_hash, created_at, expires_at, \
                 revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    s.id.to_string(),
                    s.user_id.to_string(),
                    s.hash.as_str(),
                    ts(&s.created_at),
                    ts(&s.expires_at),
                    s.revoked_at.as_ref().map(ts)
                ])
            })
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn find_session(&self, hash: &SecretHash) -> StoreResult<Option<(Session, User)>> {
        let hash = hash.as_str().to_owned();
        self.read_now(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT s.id, s.user_id, s.token_hash, s.created_at, s.expires_at, s.revoked_at, \
                 {} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1",
                USER_COLUMNS
                    .split(", ")
                    .map(|c| format!("u.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .and_then(|mut st| {
                st.query_row([hash], |r| {
                    let revoked: Option<String> = r.get(5)?;
                    Ok((
                        Session {
                            id: parse_uuid(&r.get::<_, String>(0)?)?,
                            user_id: UserId(parse_uuid(&r.get::<_, String>(1)?)?),
                            hash: SecretHash::from_stored(r.get(2)?),
                            created_at: parse_ts(&r.get::<_, String>(3)?)?,
                            expires_at: parse_ts(&r.get::<_, String>(4)?)?,
                            revoked_at: revoked.as_deref().map(parse_ts).transpose()?,
                        },
                        user_from_row(r, 6)?,
                    ))
                })
                .optional()
            })
            .map_err(map_err)
        })
        .await
    }

    async fn revoke_session(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![id.to_string(), ts(&at)]))
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn purge_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1")
                .and_then(|mut s| s.execute([ts(&before)]))
                .map(|n| n as u64)
                .map_err(map_err)
        })
        .await
    }
}

#[async_trait]
impl MemberStore for SqliteStore {
    async fn insert_organization_with_owner(
        &self,
        org: &Organization,
        owner: &User,
    ) -> StoreResult<(Organization, Member)> {
        let mut org = org.clone();
        let owner = owner.clone();
        let cache = self.orgs.clone();
        let generation = cache.generation();
        self.write_then(
            move |conn| {
                let user = match user_by_email(conn, owner.email.as_str())? {
                    Some(u) => u,
                    None => {
                        insert_user(conn, &owner)?;
                        owner
                    }
                };
                org.owner = Some(user.id);
                let values = org_values(&org)?;
                let placeholders = (1..=values.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>();
                conn.prepare_cached(&format!(
                    "INSERT INTO organizations ({ORG_COLUMNS}) VALUES ({})",
                    placeholders.join(", ")
                ))
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(values)))
                .map_err(map_err)?;
                if !org.metadata.0.is_empty() {
                    write_metadata(conn, &org).map_err(map_err)?;
                }
                let id = insert_member(conn, org.id, user.id, &[ROLE_OWNER], org.created_at)?;
                let member = member_by_id(conn, org.id, id)?;
                Ok((org, member))
            },
            move |(o, _): &(Organization, Member)| cache.wrote(o, generation),
        )
        .await
    }

    async fn transfer_ownership(
        &self,
        org_id: OrganizationId,
        to_member: i64,
        at: DateTime<Utc>,
    ) -> StoreResult<Organization> {
        let cache = self.orgs.clone();
        let generation = cache.generation();
        self.write_then(
            move |conn| {
                let target = member_by_id(conn, org_id, to_member)?;
                let org = conn
                    .prepare_cached(&format!(
                        "SELECT {ORG_COLUMNS} FROM organizations WHERE id = ?1"
                    ))
                    .and_then(|mut s| s.query_row([org_id.to_string()], org_from_row))
                    .map_err(map_err)?;
                if org.owner == Some(target.user_id) && target.is_owner() {
                    return Ok(org);
                }
                // The members this changes: the target and the current owners (before they step
                // down).
                conn.prepare_cached(
                    "UPDATE members SET updated_at = ?2 WHERE organization_id = ?1 AND (id = ?3 \
                     OR id IN (SELECT member_id FROM member_roles WHERE organization_id = ?1 \
                     AND role_id = 1))",
                )
                .and_then(|mut s| s.execute(params![org_id.to_string(), ts(&at), to_member]))
                .map_err(map_err)?;
                // Every current holder of the owner role steps down to admin.
                let holders: Vec<i64> = conn
                    .prepare_cached(
                        "SELECT member_id FROM member_roles WHERE organization_id = ?1 \
                         AND role_id = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_map(params![org_id.to_string(), ROLE_OWNER], |r| r.get(0))?
                            .collect()
                    })
                    .map_err(map_err)?;
                for m in holders {
                    conn.prepare_cached(
                        "DELETE FROM member_roles WHERE member_id = ?1 AND role_id = ?2",
                    )
                    .and_then(|mut s| s.execute(params![m, ROLE_OWNER]))
                    .map_err(map_err)?;
                    conn.prepare_cached(
                        "INSERT OR IGNORE INTO member_roles (organization_id, role_id, member_id) \
                         VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| s.execute(params![org_id.to_string(), ROLE_ADMIN, m]))
                    .map_err(map_err)?;
                }
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO member_roles (organization_id, role_id, member_id) \
                     VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![org_id.to_string(), ROLE_OWNER, to_member]))
                .map_err(map_err)?;
                let next = Organization {
                    owner: Some(target.user_id),
                    version: org.version + 1,
                    updated_at: at,
                    ..org
                };
                conn.prepare_cached(
                    "UPDATE organizations SET owner_id = ?2, version = ?3, updated_at = ?4 \
                     WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        org_id.to_string(),
                        target.user_id.to_string(),
                        next.version,
                        ts(&at)
                    ])
                })
                .map_err(map_err)?;
                Ok(next)
            },
            move |o: &Organization| cache.wrote(o, generation),
        )
        .await
    }

    async fn get_member(&self, org: OrganizationId, id: i64) -> StoreResult<Member> {
        self.read_now(move |conn| member_by_id(conn, org, id)).await
    }

    async fn find_member(&self, org: OrganizationId, user: UserId) -> StoreResult<Option<Member>> {
        self.read_now(move |conn| member_by_user(conn, org, user))
            .await
    }

    async fn list_members(&self, q: &MemberQuery) -> StoreResult<MemberPage> {
        let q = q.clone();
        self.read(move |conn| {
            let mut filter = String::from(" WHERE m.organization_id = ?1");
            let mut args: Vec<SqlValue> = vec![SqlValue::Text(q.organization_id.to_string())];
            if let Some(r) = q.role {
                args.push(SqlValue::Integer(r));
                filter.push_str(&format!(
                    " AND m.id IN (SELECT member_id FROM member_roles WHERE organization_id = ?1 \
                     AND role_id = ?{})",
                    args.len()
                ));
            }
            if let Some(w) = q.workspace {
                args.push(SqlValue::Text(w.to_string()));
                filter.push_str(&format!(
                    " AND m.id IN (SELECT member_id FROM member_workspaces \
                     WHERE organization_id = ?1 AND workspace_id = ?{})",
                    args.len()
                ));
            }
            if let Some(text) = &q.q {
                args.push(SqlValue::Text(format!(
                    "%{}%",
                    crate::like_escape(&text.to_lowercase())
                )));
                filter.push_str(&format!(
                    " AND (orgbase_fold(u.name) LIKE ?{n} ESCAPE '\\' \
                     OR u.email LIKE ?{n} ESCAPE '\\')",
                    n = args.len()
                ));
            }
            let count_sql = if q.q.is_some() {
                format!("SELECT count(*) FROM members m JOIN users u ON u.id = m.user_id{filter}")
            } else {
                format!("SELECT count(*) FROM members m{filter}")
            };
            let total: i64 = conn
                .prepare_cached(&count_sql)
                .and_then(|mut s| {
                    s.query_row(rusqlite::params_from_iter(args.clone()), |r| r.get(0))
                })
                .map_err(map_err)?;
            args.push(SqlValue::Integer(q.limit as i64));
            args.push(SqlValue::Integer(q.offset as i64));
            let sql = format!(
                "{MEMBER_SELECT}{filter} ORDER BY m.id LIMIT ?{} OFFSET ?{}",
                args.len() - 1,
                args.len()
            );
            let members = conn
                .prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(rusqlite::params_from_iter(args), member_from_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(map_err)?;
            Ok(MemberPage {
                members,
                total: total as u64,
            })
        })
        .await
    }

    async fn member_stats(&self, org: OrganizationId) -> StoreResult<MemberStats> {
        self.read_now(move |conn| {
            conn.prepare_cached(
                "SELECT members, version, content_version FROM member_stats \
                 WHERE organization_id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([org.to_string()], |r| {
                    Ok(MemberStats {
                        members: r.get::<_, i64>(0)? as u64,
                        version: r.get::<_, i64>(1)? as u64,
                        content_version: r.get::<_, i64>(2)? as u64,
                    })
                })
                .optional()
            })
            .map(Option::unwrap_or_default)
            .map_err(map_err)
        })
        .await
    }

    async fn member_ids(&self, org: OrganizationId) -> StoreResult<Vec<i64>> {
        self.read(move |conn| {
            conn.prepare_cached("SELECT id FROM members WHERE organization_id = ?1 ORDER BY id")
                .and_then(|mut s| {
                    s.query_map([org.to_string()], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<i64>>>()
                })
                .map_err(map_err)
        })
        .await
    }

    async fn members_by_ids(&self, org: OrganizationId, ids: &[i64]) -> StoreResult<Vec<Member>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.read_now(move |conn| {
            // A JSON array parameter keeps the statement the same (and cached) for any count.
            let list = serde_json::to_string(&ids).map_err(StoreError::other)?;
            conn.prepare_cached(&format!(
                "{MEMBER_SELECT} WHERE m.organization_id = ?1 \
                 AND m.id IN (SELECT value FROM json_each(?2)) ORDER BY m.id"
            ))
            .and_then(|mut s| {
                s.query_map(params![org.to_string(), list], member_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(map_err)
        })
        .await
    }

    async fn update_member(
        &self,
        org: OrganizationId,
        id: i64,
        roles: &[i64],
        workspaces: &[Uuid],
        at: DateTime<Utc>,
    ) -> StoreResult<Member> {
        let roles = roles.to_vec();
        let workspaces = workspaces.to_vec();
        self.write(move |conn| {
            member_by_id(conn, org, id)?.check_roles_change(&roles)?;
            set_roles(conn, org, id, &roles)?;
            set_workspaces(conn, org, id, &workspaces)?;
            conn.prepare_cached("UPDATE members SET updated_at = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id, ts(&at)]))
                .map_err(map_err)?;
            member_by_id(conn, org, id)
        })
        .await
    }

    async fn remove_member(&self, org: OrganizationId, id: i64) -> StoreResult<Member> {
        self.write(move |conn| {
            let current = member_by_id(conn, org, id)?;
            current.check_removable()?;
            conn.prepare_cached("DELETE FROM members WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(map_err)?;
            Ok(current)
        })
        .await
    }
}

#[async_trait]
impl RoleStore for SqliteStore {
    async fn list_roles(&self, org: OrganizationId) -> StoreResult<Vec<Role>> {
        self.read_now(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ROLE_COLUMNS} FROM roles WHERE organization_id = ?1 ORDER BY id"
            ))
            .and_then(|mut s| {
                s.query_map([org.to_string()], role_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(map_err)
        })
        .await
    }

    async fn get_role(&self, org: OrganizationId, id: i64) -> StoreResult<Role> {
        self.read_now(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ROLE_COLUMNS} FROM roles WHERE organization_id = ?1 AND id = ?2"
            ))
            .and_then(|mut s| s.query_row(params![org.to_string(), id], role_from_row))
            .map_err(map_err)
        })
        .await
    }

    async fn insert_role(&self, role: &NewRole) -> StoreResult<Role> {
        let r = role.clone();
        // The new role's id, for the audit entry staged without one.
        let staged = crate::audit::staged();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO roles (organization_id, name, description, permissions, created_at, \
                 updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.organization_id.to_string(),
                    r.name,
                    r.description,
                    permissions_json(r.permissions),
                    ts(&r.at)
                ])
            })
            .map_err(map_err)?;
            let id = conn.last_insert_rowid();
            if let Some(s) = &staged {
                s.resolve_targets(vec![id.to_string()]);
            }
            Ok(Role {
                id,
                organization_id: Some(r.organization_id),
                name: r.name,
                description: r.description,
                permissions: r.permissions,
                created_at: Some(r.at),
                updated_at: Some(r.at),
            })
        })
        .await
    }

    async fn update_role(&self, role: &Role) -> StoreResult<()> {
        let r = role.clone();
        let org = r
            .organization_id
            .ok_or_else(|| StoreError::msg("a system role cannot be stored"))?;
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE roles SET name = ?3, description = ?4, permissions = ?5, \
                     updated_at = ?6 WHERE organization_id = ?1 AND id = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        org.to_string(),
                        r.id,
                        r.name,
                        r.description,
                        permissions_json(r.permissions),
                        r.updated_at.as_ref().map(ts)
                    ])
                })
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn delete_role(&self, org: OrganizationId, id: i64) -> StoreResult<()> {
        self.write(move |conn| {
            let o = org.to_string();
            let held: i64 = conn
                .prepare_cached(
                    "SELECT (SELECT count(*) FROM member_roles WHERE organization_id = ?1 \
                     AND role_id = ?2) \
                     + (SELECT count(*) FROM api_keys k, json_each(k.roles) j \
                        WHERE k.organization_id = ?1 AND k.revoked_at IS NULL AND j.value = ?2) \
                     + (SELECT count(*) FROM invitations i, json_each(i.roles) j \
                        WHERE i.organization_id = ?1 AND i.accepted_at IS NULL \
                        AND i.revoked_at IS NULL AND j.value = ?2)",
                )
                .and_then(|mut s| s.query_row(params![o, id], |r| r.get(0)))
                .map_err(map_err)?;
            rules::check_role_unused(held as u64)?;
            let n = conn
                .prepare_cached("DELETE FROM roles WHERE organization_id = ?1 AND id = ?2")
                .and_then(|mut s| s.execute(params![o, id]))
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl WorkspaceStore for SqliteStore {
    async fn list_workspaces(&self, org: OrganizationId) -> StoreResult<Vec<Workspace>> {
        self.read_now(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {WS_COLUMNS} FROM workspaces WHERE organization_id = ?1 ORDER BY id"
            ))
            .and_then(|mut s| {
                s.query_map([org.to_string()], ws_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(map_err)
        })
        .await
    }

    async fn get_workspace(&self, org: OrganizationId, id: Uuid) -> StoreResult<Workspace> {
        self.read_now(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {WS_COLUMNS} FROM workspaces WHERE organization_id = ?1 AND id = ?2"
            ))
            .and_then(|mut s| s.query_row(params![org.to_string(), id.to_string()], ws_from_row))
            .map_err(map_err)
        })
        .await
    }

    async fn insert_workspace(&self, ws: &Workspace) -> StoreResult<()> {
        let w = ws.clone();
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO workspaces ({WS_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    w.id.to_string(),
                    w.organization_id.to_string(),
                    w.name,
                    ts(&w.created_at),
                    ts(&w.updated_at)
                ])
            })
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<()> {
        let w = ws.clone();
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE workspaces SET name = ?3, updated_at = ?4 \
                     WHERE organization_id = ?1 AND id = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        w.organization_id.to_string(),
                        w.id.to_string(),
                        w.name,
                        ts(&w.updated_at)
                    ])
                })
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn delete_workspace(&self, org: OrganizationId, id: Uuid) -> StoreResult<()> {
        self.write(move |conn| {
            let n = conn
                .prepare_cached("DELETE FROM workspaces WHERE organization_id = ?1 AND id = ?2")
                .and_then(|mut s| s.execute(params![org.to_string(), id.to_string()]))
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl InvitationStore for SqliteStore {
    async fn insert_invitation(&self, inv: &Invitation, owner_setup: bool) -> StoreResult<()> {
        let inv = inv.clone();
        self.write(move |conn| {
            let org = inv.organization_id.to_string();
            if !owner_setup {
                let member: Option<i64> = conn
                    .prepare_cached(
                        "SELECT m.id FROM members m JOIN users u ON u.id = m.user_id \
                         WHERE m.organization_id = ?1 AND u.email = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![org, inv.email.as_str()], |r| r.get(0))
                            .optional()
                    })
                    .map_err(map_err)?;
                Invitation::check_invitee(member.is_some(), owner_setup)?;
            }
            // An expired invitation no longer holds the address.
            conn.prepare_cached(
                "UPDATE invitations SET revoked_at = ?3 WHERE organization_id = ?1 AND email = ?2 \
                 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= ?3",
            )
            .and_then(|mut s| s.execute(params![org, inv.email.as_str(), ts(&inv.created_at)]))
            .map_err(map_err)?;
            conn.prepare_cached(&format!(
                "INSERT INTO invitations ({INV_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    inv.id.to_string(),
                    org,
                    inv.email.as_str(),
                    inv.name,
                    serde_json::to_string(&inv.roles).unwrap_or_else(|_| "[]".into()),
                    inv.hash.as_str(),
                    inv.invited_by,
                    ts(&inv.created_at),
                    ts(&inv.expires_at),
                    inv.accepted_at.as_ref().map(ts),
                    inv.revoked_at.as_ref().map(ts),
                    inv.sends
                ])
            })
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn list_invitations(
        &self,
        org: OrganizationId,
        all: bool,
    ) -> StoreResult<Vec<Invitation>> {
        self.read(move |conn| {
            let sql = if all {
                format!(
                    "SELECT {INV_COLUMNS} FROM invitations WHERE organization_id = ?1 \
                     ORDER BY id DESC"
                )
            } else {
                format!(
                    "SELECT {INV_COLUMNS} FROM invitations WHERE organization_id = ?1 \
                     AND accepted_at IS NULL AND revoked_at IS NULL ORDER BY id DESC"
                )
            };
            conn.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map([org.to_string()], inv_from_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(map_err)
        })
        .await
    }

    async fn get_invitation(&self, org: OrganizationId, id: Uuid) -> StoreResult<Invitation> {
        self.read_now(move |conn| inv_in_org(conn, org, id)).await
    }

    async fn find_invitation(&self, hash: &SecretHash) -> StoreResult<Option<Invitation>> {
        let hash = hash.as_str().to_owned();
        self.read_now(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {INV_COLUMNS} FROM invitations WHERE token_hash = ?1"
            ))
            .and_then(|mut s| s.query_row([hash], inv_from_row).optional())
            .map_err(map_err)
        })
        .await
    }

    async fn revoke_invitation(
        &self,
        org: OrganizationId,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> StoreResult<Invitation> {
        self.write(move |conn| {
            let inv = inv_in_org(conn, org, id)?;
            inv.check_open()?;
            conn.prepare_cached("UPDATE invitations SET revoked_at = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id.to_string(), ts(&at)]))
                .map_err(map_err)?;
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
        let hash = hash.clone();
        self.write(move |conn| {
            let inv = inv_in_org(conn, org, id)?;
            inv.check_open()?;
            conn.prepare_cached(
                "UPDATE invitations SET token_hash = ?2, expires_at = ?3, sends = sends + 1 \
                 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id.to_string(), hash.as_str(), ts(&expires_at)]))
            .map_err(map_err)?;
            Ok(Invitation {
                hash,
                expires_at,
                sends: inv.sends + 1,
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
        let acceptance = acceptance.clone();
        self.write(move |conn| {
            let inv = inv_by_id(conn, id)?;
            inv.check_acceptable(at)?;
            let consumed = conn
                .prepare_cached(
                    "UPDATE invitations SET accepted_at = ?2 WHERE id = ?1 \
                     AND accepted_at IS NULL AND revoked_at IS NULL",
                )
                .and_then(|mut s| s.execute(params![id.to_string(), ts(&at)]))
                .map_err(map_err)?;
            if consumed != 1 {
                return Err(StoreError::Conflict {
                    constraint: "invitation_not_pending",
                });
            }
            let existing = user_by_email(conn, inv.email.as_str())?;
            let user_id = match inv.account_step(existing.as_ref(), &acceptance)? {
                AccountStep::Keep(id) => id,
                AccountStep::SetPassword { id, password_hash } => {
                    conn.prepare_cached(
                        "UPDATE users SET password_hash = ?2, updated_at = ?3 \
                         WHERE id = ?1 AND password_hash IS NULL",
                    )
                    .and_then(|mut s| s.execute(params![id.to_string(), password_hash, ts(&at)]))
                    .map_err(map_err)?;
                    id
                }
                AccountStep::Create(user) => {
                    insert_user(conn, &user)?;
                    user.id
                }
            };
            let org = inv.organization_id;
            match member_by_user(conn, org, user_id)? {
                Some(m) => Ok(m),
                None => {
                    let mid = insert_member(conn, org, user_id, &inv.granted_roles()?, at)?;
                    member_by_id(conn, org, mid)
                }
            }
        })
        .await
    }
}
