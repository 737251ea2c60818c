//! Authorization everywhere: every route of the API × every kind of caller, each answer checked.
//! The table must name every operation of the OpenAPI document (which is generated from the
//! routes), so a route added without a row fails this test.
//!
//! The same walk proves the audit log: every call of a mutating route that succeeds writes
//! exactly one entry, with the row's action, the caller as its actor and its target; every call
//! refused or invalid writes none.
use orgbase_domain::people::ROLE_VIEWER;
use orgbase_domain::{now, Email, Invitation, SecretHash, User, UserId};
use orgbase_store::Acceptance;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::App;

crate::api_tests!(
    every_route_answers_only_to_those_allowed,
    a_suspended_organizations_own_callers_change_nothing,
);

/// The callers, in the order of each row's expected statuses.
const CALLERS: [&str; 7] = [
    "no credential",
    "revoked key",
    "another organization's owner",
    "member without the permission",
    "viewer",
    "owner",
    "platform key",
];

struct Row {
    method: Method,
    /// `{org}` and the placeholders `fresh` fills in.
    path: &'static str,
    body: Option<Value>,
    expect: [u16; 7],
}

fn row(method: Method, path: &'static str, body: Option<Value>, expect: [u16; 7]) -> Row {
    Row {
        method,
        path,
        body,
        expect,
    }
}

/// Statuses for a route inside an organization: 401, 401, 404 (another tenant), then the
/// member without the permission, the viewer, the owner and the platform.
fn org_route(noperm: u16, viewer: u16, owner: u16, platform: u16) -> [u16; 7] {
    [401, 401, 404, noperm, viewer, owner, platform]
}

fn table() -> Vec<Row> {
    use Method as M;
    let read = org_route(403, 200, 200, 200);
    vec![
        row(M::GET, "/healthz", None, [200; 7]),
        row(M::GET, "/readyz", None, [200; 7]),
        row(M::GET, "/metrics", None, [200; 7]),
        row(
            M::POST,
            "/api/auth/login",
            Some(json!({"email": "owner@matrix.test", "password": "password123"})),
            [200; 7],
        ),
        row(
            M::GET,
            "/api/auth/me",
            None,
            [401, 401, 200, 200, 200, 200, 403],
        ),
        row(
            M::POST,
            "/api/organizations",
            Some(json!({"name": "Made", "countryCode": "US"})),
            [401, 401, 201, 201, 201, 201, 201],
        ),
        row(
            M::GET,
            "/api/organizations",
            None,
            [401, 401, 200, 200, 200, 200, 200],
        ),
        row(M::GET, "/api/organizations/{org}", None, read),
        row(
            M::PATCH,
            "/api/organizations/{org}",
            Some(json!({"name": "Renamed {n}"})),
            org_route(403, 403, 200, 200),
        ),
        row(
            M::POST,
            "/api/organizations/{org}/upload-avatar",
            Some(json!({"$multipart": "jpeg"})),
            org_route(403, 403, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/organizations/{org}/avatar",
            None,
            org_route(403, 403, 204, 204),
        ),
        // Public: avatars on disk are images for anyone's browser.
        row(
            M::GET,
            "/avatars/{org}/0123456789abcdef0123456789abcdef-512.jpg",
            None,
            [404; 7],
        ),
        row(
            M::POST,
            "/api/organizations/{org}/billing/checkout",
            Some(
                json!({"planId": "starter", "successUrl": "https://a.example/ok", "cancelUrl": "https://a.example/no"}),
            ),
            org_route(403, 403, 422, 422),
        ),
        row(
            M::GET,
            "/api/organizations/{org}/billing",
            None,
            org_route(403, 403, 200, 200),
        ),
        // Authenticated by Stripe's signature and Chargebee's Basic auth, not a credential; neither
        // is configured here.
        row(M::POST, "/api/billing/webhooks/stripe", None, [404; 7]),
        row(M::POST, "/api/billing/webhooks/chargebee", None, [404; 7]),
        row(
            M::GET,
            "/api/organizations/{org}/me",
            None,
            org_route(200, 200, 200, 403),
        ),
        row(M::GET, "/api/organizations/{org}/members", None, read),
        row(
            M::GET,
            "/api/organizations/{org}/members/{viewer}",
            None,
            read,
        ),
        row(
            M::PUT,
            "/api/organizations/{org}/members/{member}",
            Some(json!({"roles": [3], "workspaces": []})),
            org_route(403, 403, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/organizations/{org}/members/{member}",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(M::GET, "/api/organizations/{org}/roles", None, read),
        row(
            M::POST,
            "/api/organizations/{org}/roles",
            Some(json!({"name": "role {n}", "permissions": ["org:read"]})),
            org_route(403, 403, 201, 201),
        ),
        row(M::GET, "/api/organizations/{org}/roles/{role}", None, read),
        row(
            M::PATCH,
            "/api/organizations/{org}/roles/{role}",
            Some(json!({"description": "changed {n}"})),
            org_route(403, 403, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/organizations/{org}/roles/{role}",
            None,
            org_route(403, 403, 204, 204),
        ),
        row(M::GET, "/api/organizations/{org}/workspaces", None, read),
        row(
            M::POST,
            "/api/organizations/{org}/workspaces",
            Some(json!({"name": "ws {n}"})),
            org_route(403, 403, 201, 201),
        ),
        row(
            M::GET,
            "/api/organizations/{org}/workspaces/{workspace}",
            None,
            read,
        ),
        row(
            M::PATCH,
            "/api/organizations/{org}/workspaces/{workspace}",
            Some(json!({"name": "ws renamed {n}"})),
            org_route(403, 403, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/organizations/{org}/workspaces/{workspace}",
            None,
            org_route(403, 403, 204, 204),
        ),
        row(
            M::POST,
            "/api/organizations/{org}/invite",
            Some(json!({"email": "invitee{n}@matrix.test"})),
            org_route(403, 403, 200, 200),
        ),
        row(
            M::GET,
            "/api/organizations/{org}/invitations",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/organizations/{org}/invitations/{invitation}",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(
            M::POST,
            "/api/organizations/{org}/invitations/{invitation}/resend",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(
            M::POST,
            "/api/organizations/invite/{token}/accept",
            Some(json!({"password": "password123", "password_confirmation": "password123"})),
            [200; 7],
        ),
        row(
            M::POST,
            "/api/organizations/{org}/api-keys",
            Some(json!({"name": "key {n}", "roles": [5]})),
            org_route(403, 403, 201, 201),
        ),
        row(
            M::GET,
            "/api/organizations/{org}/api-keys",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/organizations/{org}/api-keys/{key}",
            None,
            org_route(403, 403, 204, 204),
        ),
        row(
            M::POST,
            "/api/admin/api-keys",
            Some(json!({"name": "admin {n}", "kind": "platform"})),
            [401, 401, 403, 403, 403, 403, 201],
        ),
        row(
            M::GET,
            "/api/admin/api-keys",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::DELETE,
            "/api/admin/api-keys/{admin_key}",
            None,
            [401, 401, 403, 403, 403, 403, 204],
        ),
        row(
            M::POST,
            "/api/admin/organizations/{org}/credit",
            Some(json!({"amount": 1000})),
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::POST,
            "/api/admin/organizations/{org}/charge",
            Some(json!({"amount": 1, "service": "voice"})),
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::GET,
            "/api/organizations/{org}/wallet",
            None,
            org_route(403, 200, 200, 200),
        ),
        row(
            M::GET,
            "/api/organizations/{org}/wallet/transactions",
            None,
            org_route(403, 200, 200, 200),
        ),
        row(
            M::GET,
            "/api/organizations/{org}/audit-log",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(
            M::GET,
            "/api/admin/audit-log",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::GET,
            "/api/organizations/{org}/access?channel=voice",
            None,
            read,
        ),
        // Every caller with a credential is answered; a pair beyond its reach is a 404 in place.
        row(
            M::POST,
            "/api/access/check",
            Some(json!({"checks": [{"organizationId": "{org}", "channel": "sms"}]})),
            [401, 401, 200, 200, 200, 200, 200],
        ),
        row(M::GET, "/api/plans", None, [200; 7]),
        row(
            M::POST,
            "/api/admin/plans",
            Some(json!({"id": "plan-{n}", "name": "Plan", "price": 100})),
            [401, 401, 403, 403, 403, 403, 201],
        ),
        row(
            M::GET,
            "/api/admin/plans",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::GET,
            "/api/admin/plans/{plan}",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::PATCH,
            "/api/admin/plans/{plan}",
            Some(json!({"price": 200})),
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::DELETE,
            "/api/admin/plans/{plan}",
            None,
            [401, 401, 403, 403, 403, 403, 204],
        ),
        row(
            M::GET,
            "/api/organizations/{org}/webhooks",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(
            M::POST,
            "/api/organizations/{org}/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/hook/{n}"})),
            org_route(403, 403, 201, 201),
        ),
        row(
            M::GET,
            "/api/organizations/{org}/webhooks/{endpoint}",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(
            M::PATCH,
            "/api/organizations/{org}/webhooks/{endpoint}",
            Some(json!({"description": "hook {n}"})),
            org_route(403, 403, 200, 200),
        ),
        row(
            M::DELETE,
            "/api/organizations/{org}/webhooks/{endpoint}",
            None,
            org_route(403, 403, 204, 204),
        ),
        row(
            M::POST,
            "/api/organizations/{org}/webhooks/{endpoint}/rotate-secret",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(
            M::POST,
            "/api/organizations/{org}/webhooks/{endpoint}/test",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(
            M::GET,
            "/api/organizations/{org}/webhooks/{endpoint}/messages",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(
            M::GET,
            "/api/organizations/{org}/webhooks/{endpoint}/messages/{message}/attempts",
            None,
            org_route(403, 403, 200, 200),
        ),
        row(
            M::POST,
            "/api/organizations/{org}/webhooks/{endpoint}/messages/{message}/replay",
            None,
            org_route(403, 403, 202, 202),
        ),
        row(
            M::POST,
            "/api/organizations/{org}/webhooks/{endpoint}/recover?since=2020-01-01T00:00:00Z",
            None,
            org_route(403, 403, 202, 202),
        ),
        row(
            M::GET,
            "/api/admin/webhooks",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::POST,
            "/api/admin/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/platform/{n}"})),
            [401, 401, 403, 403, 403, 403, 201],
        ),
        row(
            M::GET,
            "/api/admin/webhooks/{admin_endpoint}",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::PATCH,
            "/api/admin/webhooks/{admin_endpoint}",
            Some(json!({"description": "hook {n}"})),
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::DELETE,
            "/api/admin/webhooks/{admin_endpoint}",
            None,
            [401, 401, 403, 403, 403, 403, 204],
        ),
        row(
            M::POST,
            "/api/admin/webhooks/{admin_endpoint}/rotate-secret",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::POST,
            "/api/admin/webhooks/{admin_endpoint}/test",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::GET,
            "/api/admin/webhooks/{admin_endpoint}/messages",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::GET,
            "/api/admin/webhooks/{admin_endpoint}/messages/{admin_message}/attempts",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::POST,
            "/api/admin/webhooks/{admin_endpoint}/messages/{admin_message}/replay",
            None,
            [401, 401, 403, 403, 403, 403, 202],
        ),
        row(
            M::POST,
            "/api/admin/webhooks/{admin_endpoint}/recover?since=2020-01-01T00:00:00Z",
            None,
            [401, 401, 403, 403, 403, 403, 202],
        ),
        // The token travels in the query string here, and only platform and partner keys count.
        row(
            M::POST,
            "/api/v2/updateOrganization?token={caller}&targetOrganizationId={org}",
            Some(json!({"orgName": "Settings {n}"})),
            [401, 401, 401, 401, 401, 401, 200],
        ),
        row(
            M::PATCH,
            "/v1/orgs/{org}/properties",
            Some(json!({"updates": {"org_display_name": "Props {n}"}})),
            [401, 401, 404, 403, 403, 200, 200],
        ),
        // From here on the rows change who is who; they run last, in this order.
        row(
            M::DELETE,
            "/api/organizations/{org}",
            None,
            org_route(403, 403, 204, 204),
        ),
        row(
            M::POST,
            "/api/admin/organizations/{org}/restore",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        row(
            M::POST,
            "/api/organizations/{org}/transfer-ownership",
            Some(json!({"memberId": "{member}"})),
            // The owner hands over first; the platform then hands over to another member.
            org_route(403, 403, 200, 200),
        ),
        row(
            M::POST,
            "/api/auth/logout",
            None,
            [401, 401, 204, 204, 204, 204, 403],
        ),
    ]
}

/// Routes that read, though by POST (a body of questions): they record nothing.
const READS_BY_POST: &[&str] = &["POST /api/access/check"];

/// The audit action a successful call of each mutating route records.
fn actions() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("POST /api/auth/login", "session.created"),
        ("POST /api/auth/logout", "session.revoked"),
        ("POST /api/organizations", "organization.created"),
        ("PATCH /api/organizations/{org}", "organization.updated"),
        ("DELETE /api/organizations/{org}", "organization.deleted"),
        (
            "POST /api/admin/organizations/{org}/restore",
            "organization.restored",
        ),
        (
            "POST /api/organizations/{org}/upload-avatar",
            "organization.updated",
        ),
        (
            "DELETE /api/organizations/{org}/avatar",
            "organization.updated",
        ),
        (
            "POST /api/organizations/{org}/billing/checkout",
            "billing.checkout_started",
        ),
        ("POST /api/billing/webhooks/stripe", "plan.changed"),
        ("POST /api/billing/webhooks/chargebee", "plan.changed"),
        (
            "PUT /api/organizations/{org}/members/{member}",
            "member.updated",
        ),
        (
            "DELETE /api/organizations/{org}/members/{member}",
            "member.removed",
        ),
        ("POST /api/organizations/{org}/roles", "role.created"),
        (
            "PATCH /api/organizations/{org}/roles/{role}",
            "role.updated",
        ),
        (
            "DELETE /api/organizations/{org}/roles/{role}",
            "role.deleted",
        ),
        (
            "POST /api/organizations/{org}/workspaces",
            "workspace.created",
        ),
        (
            "PATCH /api/organizations/{org}/workspaces/{workspace}",
            "workspace.updated",
        ),
        (
            "DELETE /api/organizations/{org}/workspaces/{workspace}",
            "workspace.deleted",
        ),
        ("POST /api/organizations/{org}/invite", "invitation.created"),
        (
            "DELETE /api/organizations/{org}/invitations/{invitation}",
            "invitation.revoked",
        ),
        (
            "POST /api/organizations/{org}/invitations/{invitation}/resend",
            "invitation.resent",
        ),
        (
            "POST /api/organizations/invite/{token}/accept",
            "invitation.accepted",
        ),
        ("POST /api/organizations/{org}/api-keys", "api_key.created"),
        (
            "DELETE /api/organizations/{org}/api-keys/{key}",
            "api_key.revoked",
        ),
        ("POST /api/admin/api-keys", "api_key.created"),
        ("DELETE /api/admin/api-keys/{admin_key}", "api_key.revoked"),
        (
            "POST /api/admin/organizations/{org}/credit",
            "wallet.credited",
        ),
        (
            "POST /api/admin/organizations/{org}/charge",
            "wallet.charged",
        ),
        ("POST /api/admin/plans", "plan.created"),
        ("PATCH /api/admin/plans/{plan}", "plan.updated"),
        ("DELETE /api/admin/plans/{plan}", "plan.deleted"),
        (
            "POST /api/v2/updateOrganization?token={caller}&targetOrganizationId={org}",
            "organization.updated",
        ),
        ("PATCH /v1/orgs/{org}/properties", "organization.updated"),
        (
            "POST /api/organizations/{org}/transfer-ownership",
            "organization.ownership_transferred",
        ),
        (
            "POST /api/organizations/{org}/webhooks",
            "webhook_endpoint.created",
        ),
        (
            "PATCH /api/organizations/{org}/webhooks/{endpoint}",
            "webhook_endpoint.updated",
        ),
        (
            "DELETE /api/organizations/{org}/webhooks/{endpoint}",
            "webhook_endpoint.deleted",
        ),
        (
            "POST /api/organizations/{org}/webhooks/{endpoint}/rotate-secret",
            "webhook_endpoint.secret_rotated",
        ),
        (
            "POST /api/organizations/{org}/webhooks/{endpoint}/test",
            "webhook_endpoint.tested",
        ),
        (
            "POST /api/organizations/{org}/webhooks/{endpoint}/messages/{message}/replay",
            "webhook_message.replayed",
        ),
        (
            "POST /api/organizations/{org}/webhooks/{endpoint}/recover?since=2020-01-01T00:00:00Z",
            "webhook_endpoint.recovered",
        ),
        ("POST /api/admin/webhooks", "webhook_endpoint.created"),
        (
            "PATCH /api/admin/webhooks/{admin_endpoint}",
            "webhook_endpoint.updated",
        ),
        (
            "DELETE /api/admin/webhooks/{admin_endpoint}",
            "webhook_endpoint.deleted",
        ),
        (
            "POST /api/admin/webhooks/{admin_endpoint}/rotate-secret",
            "webhook_endpoint.secret_rotated",
        ),
        (
            "POST /api/admin/webhooks/{admin_endpoint}/test",
            "webhook_endpoint.tested",
        ),
        (
            "POST /api/admin/webhooks/{admin_endpoint}/messages/{admin_message}/replay",
            "webhook_message.replayed",
        ),
        (
            "POST /api/admin/webhooks/{admin_endpoint}/recover?since=2020-01-01T00:00:00Z",
            "webhook_endpoint.recovered",
        ),
    ])
}

/// Rows whose calls all act on the same state: once one caller succeeded, the next ones find
/// the change made (the same avatar, no avatar, a deleted organization).
const REPEATS_CHANGE_NOTHING: [&str; 3] = [
    "POST /api/organizations/{org}/upload-avatar",
    "DELETE /api/organizations/{org}/avatar",
    "DELETE /api/organizations/{org}",
];

/// Every audit entry, by id.
async fn audit_entries(app: &App) -> BTreeMap<uuid::Uuid, orgbase_domain::AuditEntry> {
    app.db
        .store
        .list_audit_entries(&orgbase_domain::AuditQuery {
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e))
        .collect()
}

/// Makes what a call needs afresh (a member to remove, a role to delete, …), so that each
/// caller's call has its own target and no call depends on another's effect.
struct Fixture<'a> {
    app: &'a App,
    org: String,
    viewer_member: i64,
    n: AtomicUsize,
}

impl Fixture<'_> {
    fn next(&self) -> usize {
        self.n.fetch_add(1, Ordering::Relaxed)
    }

    async fn member(&self) -> i64 {
        let n = self.next();
        let org: orgbase_domain::OrganizationId = self.org.parse().unwrap();
        let t = now();
        let email = Email::parse("email", &format!("member{n}@matrix.test")).unwrap();
        let inv = Invitation {
            id: uuid::Uuid::now_v7(),
            organization_id: org,
            email: email.clone(),
            name: None,
            roles: vec![3],
            hash: SecretHash::of(&format!("obi_matrix_{n}_{}", uuid::Uuid::new_v4())),
            invited_by: "test".into(),
            created_at: t,
            expires_at: t + chrono::Duration::days(1),
            accepted_at: None,
            revoked_at: None,
            sends: 1,
        };
        let store = &self.app.db.store;
        store.insert_invitation(&inv, false).await.unwrap();
        let user = User {
            id: UserId::new(),
            email,
            name: "M".into(),
            // Never logs in: any stored value will do.
            password_hash: Some("$argon2id$unused".into()),
            created_at: t,
            updated_at: t,
        };
        store
            .accept_invitation(inv.id, t, &Acceptance::SetPassword { user })
            .await
            .unwrap()
            .id
    }

    async fn fill(&self, template: &str) -> String {
        let app = self.app;
        let org = &self.org;
        let mut s = template
            .replace("{org}", org)
            .replace("{viewer}", &self.viewer_member.to_string())
            .replace("{n}", &self.next().to_string());
        if s.contains("{member}") {
            s = s.replace("{member}", &self.member().await.to_string());
        }
        let made = |a: crate::Answer| {
            assert!(a.status.is_success(), "fixture: {}", a.text);
            a
        };
        if s.contains("{role}") {
            let r = made(
                app.post(
                    &format!("/api/organizations/{org}/roles"),
                    json!({"name": format!("fixture {}", self.next()), "permissions": ["org:read"]}),
                )
                .await,
            );
            s = s.replace("{role}", &r.body["id"].to_string());
        }
        if s.contains("{workspace}") {
            let w = made(
                app.post(
                    &format!("/api/organizations/{org}/workspaces"),
                    json!({"name": format!("fixture {}", self.next())}),
                )
                .await,
            );
            s = s.replace("{workspace}", w.body["id"].as_str().unwrap());
        }
        if s.contains("{invitation}") || s.contains("{token}") {
            let i = made(
                app.post(
                    &format!("/api/organizations/{org}/invite"),
                    json!({"email": format!("fixture{}@matrix.test", self.next())}),
                )
                .await,
            );
            s = s
                .replace("{invitation}", i.body["data"]["id"].as_str().unwrap())
                .replace("{token}", &app.last_token());
        }
        if s.contains("{key}") {
            let k = made(
                app.post(
                    &format!("/api/organizations/{org}/api-keys"),
                    json!({"name": "fixture", "roles": [5]}),
                )
                .await,
            );
            s = s.replace("{key}", k.body["id"].as_str().unwrap());
        }
        if s.contains("{plan}") {
            let p = made(
                app.post(
                    "/api/admin/plans",
                    json!({"id": format!("fixture-{}", self.next()), "name": "F", "price": 1}),
                )
                .await,
            );
            s = s.replace("{plan}", p.body["id"].as_str().unwrap());
        }
        if s.contains("{endpoint}") || s.contains("{admin_endpoint}") {
            // An endpoint (at a closed port), and a delivery of a change to it.
            let admin = s.contains("{admin_endpoint}");
            let base = if admin {
                "/api/admin/webhooks".to_owned()
            } else {
                format!("/api/organizations/{org}/webhooks")
            };
            let e = made(
                app.post(&base, json!({"url": "http://127.0.0.1:9/fixture"}))
                    .await,
            );
            let id = e.body["id"].as_str().unwrap().to_owned();
            if s.contains("{message}") || s.contains("{admin_message}") {
                made(
                    app.patch(
                        &format!("/api/organizations/{org}"),
                        json!({"name": format!("Hooked {}", self.next())}),
                    )
                    .await,
                );
                app.state.webhooks.worker.drain().await.unwrap();
                let m = made(app.get(&format!("{base}/{id}/messages")).await);
                let mid = m.body["data"][0]["id"].as_str().unwrap().to_owned();
                s = s
                    .replace("{message}", &mid)
                    .replace("{admin_message}", &mid);
            }
            s = s
                .replace("{endpoint}", &id)
                .replace("{admin_endpoint}", &id);
        }
        if s.contains("{admin_key}") {
            let k = made(
                app.post(
                    "/api/admin/api-keys",
                    json!({"name": "fixture", "kind": "platform"}),
                )
                .await,
            );
            s = s.replace("{admin_key}", k.body["id"].as_str().unwrap());
        }
        s
    }
}

/// Every operation of the OpenAPI document, as `METHOD /path/{param}`.
fn documented_operations() -> BTreeSet<String> {
    let doc = serde_json::to_value(orgbase_api::openapi()).unwrap();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if ["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                ops.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    ops
}

/// A table path in the OpenAPI spelling, to compare the two.
fn documented_spelling(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    if path.starts_with("/api/admin/organizations/{org}/c") {
        // The seed's spelling of the wallet's admin routes.
        return path.replace("{org}", "{organization}");
    }
    if path.starts_with("/v1/orgs/") {
        return path.replace("{org}", "{org_id}");
    }
    if path.ends_with("/upload-avatar") {
        // The seed's spelling.
        return path.replace("{org}", "{organization}");
    }
    if path.starts_with("/avatars/") {
        return "/avatars/{organizationId}/{file}".into();
    }
    path.replace("{org}", "{organizationId}")
        .replace("{plan}", "{planId}")
        .replace("{viewer}", "{memberId}")
        .replace("{member}", "{memberId}")
        .replace("{role}", "{roleId}")
        .replace("{workspace}", "{workspaceId}")
        .replace("{invitation}", "{invitationId}")
        .replace("{token}", "{inviteToken}")
        .replace("{admin_key}", "{keyId}")
        .replace("{admin_endpoint}", "{endpointId}")
        .replace("{endpoint}", "{endpointId}")
        .replace("{admin_message}", "{messageId}")
        .replace("{message}", "{messageId}")
        .replace("{key}", "{keyId}")
}

async fn every_route_answers_only_to_those_allowed(app: App) {
    let rows = table();
    let covered: BTreeSet<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.method, documented_spelling(r.path)))
        .collect();
    let documented = documented_operations();
    let missing: Vec<_> = documented.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&documented).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "routes without a row: {missing:?}; rows without a route: {stale:?}"
    );

    // The callers.
    let (org, owner) = app.owned_org("owner@matrix.test").await;
    let (_, other_owner) = app.owned_org("other@matrix.test").await;
    let none_role = app
        .post(
            &format!("/api/organizations/{org}/roles"),
            json!({"name": "nothing", "permissions": []}),
        )
        .await;
    let none_role = none_role.body["id"].as_i64().unwrap();
    let (noperm, _) = app.person(&org, "noperm@matrix.test", &[none_role]).await;
    let (viewer, viewer_member) = app.person(&org, "viewer@matrix.test", &[ROLE_VIEWER]).await;
    let revoked = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "to revoke", "kind": "platform"}),
        )
        .await;
    let revoked_key = revoked.body["key"].as_str().unwrap().to_owned();
    let a = app
        .delete(&format!(
            "/api/admin/api-keys/{}",
            revoked.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let tokens: [Option<String>; 7] = [
        None,
        Some(revoked_key),
        Some(other_owner),
        Some(noperm),
        Some(viewer),
        Some(owner),
        Some(app.key.clone()),
    ];
    let fixture = Fixture {
        app: &app,
        org,
        viewer_member,
        n: AtomicUsize::new(0),
    };
    let mut failures = Vec::new();
    for r in &rows {
        let mut row_succeeded = false;
        for (i, token) in tokens.iter().enumerate() {
            let path = fixture.fill(r.path).await;
            let body = match &r.body {
                Some(b) => {
                    let filled = fixture.fill(&b.to_string()).await;
                    let mut v: Value = serde_json::from_str(&filled).unwrap();
                    // A filled-in member id is a number, not a string.
                    if let Some(m) = v.get("memberId").and_then(|m| m.as_str()) {
                        v["memberId"] = json!(m.parse::<i64>().unwrap());
                    }
                    Some(v)
                }
                None => None,
            };
            // A token in the query string replaces the header.
            let (path, header) = if path.contains("{caller}") {
                let t = token.clone().unwrap_or_default();
                (path.replace("{caller}", &t), None)
            } else {
                (path, token.as_deref())
            };
            let mutating = r.method != Method::GET
                && !READS_BY_POST.contains(&format!("{} {}", r.method, r.path).as_str());
            let before = if mutating {
                audit_entries(&app).await
            } else {
                BTreeMap::new()
            };
            let a = if body.as_ref().is_some_and(|b| b.get("$multipart").is_some()) {
                let form = crate::avatars::form(
                    orgbase_avatar::testing::images::jpeg(32, 32),
                    "image/jpeg",
                );
                let org = path.split('/').nth(3).unwrap().to_owned();
                crate::avatars::upload(&app, header, &org, form).await
            } else {
                app.as_(header, r.method.clone(), &path, body).await
            };
            if mutating {
                let written: Vec<_> = audit_entries(&app)
                    .await
                    .into_iter()
                    .filter(|(id, _)| !before.contains_key(id))
                    .map(|(_, e)| e)
                    .collect();
                let op = format!("{} {}", r.method, r.path);
                let action = actions().get(op.as_str()).copied();
                // A repeat of what an earlier caller of the row did changes nothing, and
                // records nothing.
                let repeat = REPEATS_CHANGE_NOTHING.contains(&op.as_str()) && row_succeeded;
                row_succeeded |= a.status.is_success();
                let problem = if repeat && written.is_empty() {
                    None
                } else {
                    audit_problem(&a, &written, action, i)
                };
                if let Some(problem) = problem {
                    failures.push(format!(
                        "{} {} as {}: {problem}",
                        r.method, r.path, CALLERS[i]
                    ));
                }
            }
            if a.status.as_u16() != r.expect[i] {
                failures.push(format!(
                    "{} {} as {}: expected {}, got {} {}",
                    r.method,
                    r.path,
                    CALLERS[i],
                    r.expect[i],
                    a.status.as_u16(),
                    a.text.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What is wrong with the entries a call wrote, if anything: one entry with the row's action,
/// the caller as actor and a target for a success; none for a refusal.
fn audit_problem(
    a: &crate::Answer,
    written: &[orgbase_domain::AuditEntry],
    action: Option<&str>,
    caller: usize,
) -> Option<String> {
    use orgbase_domain::ActorType;
    if !a.status.is_success() {
        return (!written.is_empty()).then(|| {
            format!(
                "answered {} but wrote {:?}",
                a.status,
                written.iter().map(|e| &e.action).collect::<Vec<_>>()
            )
        });
    }
    let Some(action) = action else {
        return Some("a mutating route without an audit action in actions()".into());
    };
    let [e] = written else {
        return Some(format!(
            "wrote {} entries, not one: {:?}",
            written.len(),
            written.iter().map(|e| &e.action).collect::<Vec<_>>()
        ));
    };
    if e.action != action {
        return Some(format!("action {}, not {action}", e.action));
    }
    // A person signing in or accepting acts as themselves, whoever called; otherwise the
    // platform key is the platform, and every other caller here is a person.
    let by_person = matches!(action, "session.created" | "invitation.accepted");
    let expected = if caller == 6 && !by_person {
        ActorType::PlatformKey
    } else {
        ActorType::User
    };
    if e.actor.kind != expected || e.actor.id.is_none() {
        return Some(format!("actor {:?}, not {expected:?}", e.actor));
    }
    if e.target.id.is_empty() || e.target.kind.is_empty() {
        return Some(format!("no target: {:?}", e.target));
    }
    if e.request_id.is_none()
        || e.user_agent.as_deref() != Some("orgbase-tests/1")
        || e.client_address.as_deref() != Some("127.0.0.1")
    {
        return Some(format!(
            "request id, user agent or address missing: {:?} {:?} {:?}",
            e.request_id, e.user_agent, e.client_address
        ));
    }
    None
}

/// The row's call, its placeholders filled in, as `token`, with the audit entries it wrote
/// (not counting those of the fixtures it needed).
async fn call_row(fixture: &Fixture<'_>, r: &Row, token: &str) -> (crate::Answer, usize) {
    let app = fixture.app;
    let path = fixture.fill(r.path).await;
    let body = match &r.body {
        Some(b) => {
            let mut v: Value = serde_json::from_str(&fixture.fill(&b.to_string()).await).unwrap();
            if let Some(m) = v.get("memberId").and_then(|m| m.as_str()) {
                v["memberId"] = json!(m.parse::<i64>().unwrap());
            }
            Some(v)
        }
        None => None,
    };
    let (path, header) = if path.contains("{caller}") {
        (path.replace("{caller}", token), None)
    } else {
        (path, Some(token))
    };
    let before = audit_entries(app).await.len();
    let a = if body.as_ref().is_some_and(|b| b.get("$multipart").is_some()) {
        let form =
            crate::avatars::form(orgbase_avatar::testing::images::jpeg(32, 32), "image/jpeg");
        let org = path.split('/').nth(3).unwrap().to_owned();
        crate::avatars::upload(app, header, &org, form).await
    } else {
        app.as_(header, r.method.clone(), &path, body).await
    };
    let written = audit_entries(app).await.len() - before;
    (a, written)
}

/// SPEC's `suspended`: the organization's own key and its members' sessions may read, but every
/// change they attempt, on every surface, answers 403 `organization_suspended` and records
/// nothing; the platform still acts. Every mutating row of the table that the owner may call
/// (on the organization, or joining it by an invitation) is walked.
async fn a_suspended_organizations_own_callers_change_nothing(app: App) {
    let (org, owner) = app.owned_org("owner@suspended.test").await;
    let key = app
        .post(
            &format!("/api/organizations/{org}/api-keys"),
            json!({"name": "integration", "roles": [5]}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    let org_key = key.body["key"].as_str().unwrap().to_owned();
    let (_, viewer_member) = app
        .person(&org, "viewer@suspended.test", &[ROLE_VIEWER])
        .await;
    let a = app
        .patch(
            &format!("/api/organizations/{org}"),
            json!({"status": "suspended", "statusReason": "chargeback"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let fixture = Fixture {
        app: &app,
        org: org.clone(),
        viewer_member,
        n: AtomicUsize::new(0),
    };
    let mut failures = Vec::new();
    let mut walked = 0;
    for r in table() {
        let op = format!("{} {}", r.method, r.path);
        let owners = (200..300).contains(&r.expect[5]);
        let on_org = r.path.contains("{org}") || r.path.contains("{token}");
        if r.method == Method::GET || READS_BY_POST.contains(&op.as_str()) || !owners || !on_org {
            continue;
        }
        walked += 1;
        for (who, token) in [("owner", &owner), ("organization key", &org_key)] {
            let (a, written) = call_row(&fixture, &r, token).await;
            let said = a.text.contains("organization_suspended")
                || a.text.contains("ORGANIZATION_SUSPENDED")
                || a.text.contains("is suspended");
            if a.status != StatusCode::FORBIDDEN || !said || written != 0 {
                failures.push(format!(
                    "{op} as {who}: {} {} ({written} entries)",
                    a.status,
                    a.text.chars().take(160).collect::<String>()
                ));
            }
        }
        // The platform still acts (joining by an invitation is a person's own act; the
        // organization's deletion comes last, below).
        if r.path.contains("{token}") || op == "DELETE /api/organizations/{org}" {
            continue;
        }
        let (a, _) = call_row(&fixture, &r, &app.key).await;
        if a.status.as_u16() != r.expect[6] {
            failures.push(format!(
                "{op} as the platform: expected {}, got {} {}",
                r.expect[6],
                a.status,
                a.text.chars().take(160).collect::<String>()
            ));
        }
    }
    assert!(walked >= 25, "{walked} rows walked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Reading still works for its own callers.
    for token in [&owner, &org_key] {
        let a = app
            .as_(
                Some(token),
                Method::GET,
                &format!("/api/organizations/{org}"),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["status"], "suspended");
    }
    let a = app.delete(&format!("/api/organizations/{org}")).await;
    assert!(a.status.is_success(), "{}", a.text);
}
