//! People: login and sessions, owners, members, roles, workspaces, invitations, organization
//! keys.
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{Answer, App};

crate::api_tests!(
    login_logout_and_me,
    wrong_email_and_wrong_password_look_the_same,
    failed_logins_are_throttled_per_account,
    login_rejects_bad_bodies,
    a_session_creates_an_organization_and_owns_it,
    the_platform_names_an_owner_who_is_invited_to_set_a_password,
    members_are_paged_as_the_seed_says,
    member_pages_are_filtered,
    members_are_updated_with_known_roles_and_workspaces_only,
    the_owner_cannot_be_removed_or_demoted_and_ownership_transfers,
    nobody_grants_what_they_lack,
    custom_roles_and_workspaces,
    invitations_conflict_list_revoke_and_resend,
    accepting_checks_the_password_and_spends_the_token,
    an_existing_account_joins_without_its_password_changing,
    concurrent_accepts_let_exactly_one_win,
    organization_keys_act_within_their_roles,
    another_organizations_credentials_get_404,
    a_person_lists_only_their_organizations,
    creating_sets_no_platform_only_field,
    an_owner_invitation_never_makes_a_second_owner,
    inviting_with_default_roles_still_checks_the_grant,
    parallel_guesses_do_not_slip_past_the_throttle,
    accepting_without_a_body_and_getting_a_session,
    another_tenants_ids_under_ones_own_organization_are_404,
    cached_member_pages_follow_every_change_they_show,
);

fn path(org: &str, rest: &str) -> String {
    format!("/api/organizations/{org}{rest}")
}

async fn new_org(app: &App) -> String {
    app.org(json!({"name": "Acme", "countryCode": "US"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn accept(app: &App, token: &str, body: Value) -> Answer {
    app.as_(
        None,
        Method::POST,
        &format!("/api/organizations/invite/{token}/accept"),
        Some(body),
    )
    .await
}

async fn login_login(app: &App, email: &str, password: &str) -> Answer {
    app.as_(
        None,
        Method::POST,
        "/api/auth/login",
        Some(json!({"email": email, "password": password})),
    )
    .await
}

async fn login_logout_and_me(app: App) {
    let org = new_org(&app).await;
    let (token, _) = app.person(&org, "Ann@Example.com", &[3]).await;
    assert!(token.starts_with("obs_"));
    let me = app
        .as_(Some(&token), Method::GET, "/api/auth/me", None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["user"]["email"], "ann@example.com");
    assert!(me.body["sessionExpiresAt"].as_str().is_some());
    assert!(!me.text.contains("password"));
    // Logging in again with the address typed differently works: addresses are normalised.
    let a = login_login(&app, " ANN@example.com ", "password123").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["user"]["name"], "Test Person");
    assert!(a.body["expiresAt"].as_str().is_some());
    // A key is not a session.
    let k = app.get("/api/auth/me").await;
    k.assert_problem(403, "forbidden");
    let out = app
        .as_(Some(&token), Method::POST, "/api/auth/logout", None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    app.as_(Some(&token), Method::GET, "/api/auth/me", None)
        .await
        .assert_problem(401, "revoked_credentials");
    app.as_(None, Method::GET, "/api/auth/me", None)
        .await
        .assert_problem(401, "missing_credentials");
    app.as_(Some("obs_nope"), Method::GET, "/api/auth/me", None)
        .await
        .assert_problem(401, "invalid_credentials");
}

async fn wrong_email_and_wrong_password_look_the_same(app: App) {
    let org = new_org(&app).await;
    app.person(&org, "bob@example.com", &[3]).await;
    let t0 = std::time::Instant::now();
    let wrong_pw = login_login(&app, "bob@example.com", "not-the-password").await;
    let t_pw = t0.elapsed();
    let t1 = std::time::Instant::now();
    let no_user = login_login(&app, "nobody@example.com", "not-the-password").await;
    let t_user = t1.elapsed();
    wrong_pw.assert_problem(401, "invalid_login");
    no_user.assert_problem(401, "invalid_login");
    assert_eq!(wrong_pw.body["detail"], no_user.body["detail"]);
    // Both ran a full argon2 verification: neither is a fast path.
    assert!(
        t_user.as_secs_f64() > t_pw.as_secs_f64() * 0.3,
        "unknown e-mail answered in {t_user:?}, wrong password in {t_pw:?}"
    );
}

async fn failed_logins_are_throttled_per_account(app: App) {
    let org = new_org(&app).await;
    app.person(&org, "carl@example.com", &[3]).await;
    for _ in 0..5 {
        login_login(&app, "carl@example.com", "wrong-password")
            .await
            .assert_problem(401, "invalid_login");
    }
    let a = login_login(&app, "carl@example.com", "password123").await;
    a.assert_problem(429, "too_many_requests");
    let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=180).contains(&wait), "{wait}");
    // Another account is not affected.
    app.person(&org, "dora@example.com", &[3]).await;
}

async fn login_rejects_bad_bodies(app: App) {
    for (body, field) in [
        (json!({}), "email"),
        (json!({"email": "a@b.co"}), "password"),
        (json!({"email": 5, "password": "x"}), "email"),
        (json!({"email": "a@b.co", "password": ""}), "password"),
        (
            json!({"email": "a@b.co", "password": "x", "remember": true}),
            "remember",
        ),
    ] {
        let a = app
            .as_(None, Method::POST, "/api/auth/login", Some(body.clone()))
            .await;
        a.assert_problem(422, "validation_failed");
        assert!(
            a.field_errors().iter().any(|(f, _)| f == field),
            "{body}: {}",
            a.text
        );
    }
    let raw = app
        .http
        .post(format!("{}/api/auth/login", app.base))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
}

async fn a_session_creates_an_organization_and_owns_it(app: App) {
    let (org, owner) = app.owned_org("olga@example.com").await;
    let o = app
        .as_(Some(&owner), Method::GET, &path(&org, ""), None)
        .await;
    assert_eq!(o.status, StatusCode::OK);
    let me = app
        .as_(Some(&owner), Method::GET, &path(&org, "/me"), None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["data"]["roles"], json!([1]));
    assert_eq!(me.body["data"]["isOwner"], true);
    assert_eq!(o.body["owner"], me.body["data"]["userId"]);
    assert!(me.body["data"]["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("keys:manage")));
    // A person cannot name another owner; ownership moves only by transfer.
    let a = app
        .as_(
            Some(&owner),
            Method::POST,
            "/api/organizations",
            Some(json!({"name": "X", "countryCode": "US", "ownerEmail": "z@example.com"})),
        )
        .await;
    a.assert_problem(403, "forbidden");
    // The owner may update it, but not what only the platform decides.
    let a = app
        .as_(
            Some(&owner),
            Method::PATCH,
            &path(&org, ""),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    for body in [
        json!({"status": "active"}),
        json!({"rateLimit": 50}),
        json!({"type": "partner"}),
    ] {
        app.as_(Some(&owner), Method::PATCH, &path(&org, ""), Some(body))
            .await
            .assert_problem(403, "forbidden");
    }
    // An owner can delete it; then it is gone for them and they cannot undo it.
    let d = app
        .as_(Some(&owner), Method::DELETE, &path(&org, ""), None)
        .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    app.as_(Some(&owner), Method::GET, &path(&org, ""), None)
        .await
        .assert_problem(404, "not_found");
    app.as_(
        Some(&owner),
        Method::POST,
        &format!("/api/admin/organizations/{org}/restore"),
        None,
    )
    .await
    .assert_problem(403, "forbidden");
}

async fn the_platform_names_an_owner_who_is_invited_to_set_a_password(app: App) {
    let a = app
        .post(
            "/api/organizations",
            json!({"name": "Owned By Pat", "countryCode": "US", "ownerEmail": "Pat@Example.com", "ownerName": "Pat"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let org = a.body["id"].as_str().unwrap().to_owned();
    assert!(a.body["owner"].as_str().is_some());
    let token = app.last_token();
    assert!(!a.text.contains(&token));
    // Pat cannot log in before setting a password.
    login_login(&app, "pat@example.com", "password123")
        .await
        .assert_problem(401, "invalid_login");
    let ok = accept(
        &app,
        &token,
        json!({"password": "password123", "password_confirmation": "password123"}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["message"], "Password set successfully.");
    let pat = app.login("pat@example.com", "password123").await;
    let me = app
        .as_(Some(&pat), Method::GET, &path(&org, "/me"), None)
        .await;
    assert_eq!(me.body["data"]["roles"], json!([1]), "{}", me.text);
    assert_eq!(me.body["data"]["userId"], a.body["owner"]);
    // A bad owner e-mail is a field error, and nothing is created.
    let bad = app
        .post(
            "/api/organizations",
            json!({"name": "Nope", "countryCode": "US", "ownerEmail": "not-an-email"}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(bad.field_errors()[0].0, "ownerEmail");
    let list = app.get("/api/organizations?q=Nope").await;
    assert_eq!(list.body["data"], json!([]));
}

async fn members_are_paged_as_the_seed_says(app: App) {
    let org = new_org(&app).await;
    for i in 0..4 {
        app.person(&org, &format!("m{i}@example.com"), &[3]).await;
    }
    let a = app.get(&path(&org, "/members?page=2&per_page=3")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["success"], true);
    assert_eq!(a.body["message"], "All Organization Members");
    let d = &a.body["data"];
    assert_eq!(d["current_page"], 2);
    assert_eq!(d["per_page"], 3);
    assert_eq!(d["total"], 4);
    assert_eq!(d["last_page"], 2);
    assert_eq!(d["from"], 4);
    assert_eq!(d["to"], 4);
    assert_eq!(d["data"].as_array().unwrap().len(), 1);
    let m = &d["data"][0];
    for k in [
        "id",
        "userId",
        "name",
        "email",
        "roles",
        "workspaces",
        "isOwner",
    ] {
        assert!(!m[k].is_null(), "{k} missing: {m}");
    }
    assert!(m["id"].is_i64());
    // Defaults: page 1, 15 a page.
    let a = app.get(&path(&org, "/members")).await;
    assert_eq!(a.body["data"]["per_page"], 15);
    assert_eq!(a.body["data"]["current_page"], 1);
    assert_eq!(a.body["data"]["from"], 1);
    // Past the end: an empty page, not an error.
    let a = app.get(&path(&org, "/members?page=9")).await;
    assert_eq!(a.body["data"]["data"], json!([]));
    assert_eq!(a.body["data"]["from"], Value::Null);
    // Out of range is a 422, never a silent clamp.
    for q in [
        "per_page=0",
        "per_page=101",
        "per_page=x",
        "page=0",
        "page=-1",
        "bogus=1",
    ] {
        app.get(&path(&org, &format!("/members?{q}")))
            .await
            .assert_problem(422, "validation_failed");
    }
}

async fn member_pages_are_filtered(app: App) {
    let org = new_org(&app).await;
    let ws = app
        .post(&path(&org, "/workspaces"), json!({"name": "Support"}))
        .await;
    let ws = ws.body["id"].as_str().unwrap().to_owned();
    let (_, ann) = app.person(&org, "ann_x@example.com", &[3]).await;
    app.person(&org, "bob@example.com", &[5]).await;
    let a = app
        .call(
            Method::PUT,
            &path(&org, &format!("/members/{ann}")),
            Some(&app.key),
            Some(&json!({"roles": [2], "workspaces": [ws]})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let count = |a: &Answer| a.body["data"]["total"].as_u64().unwrap();
    assert_eq!(count(&app.get(&path(&org, "/members?role=2")).await), 1);
    assert_eq!(count(&app.get(&path(&org, "/members?role=5")).await), 1);
    assert_eq!(
        count(
            &app.get(&path(&org, &format!("/members?workspace={ws}")))
                .await
        ),
        1
    );
    assert_eq!(count(&app.get(&path(&org, "/members?q=BOB")).await), 1);
    // `_` is a literal, not a wildcard.
    assert_eq!(count(&app.get(&path(&org, "/members?q=n_x")).await), 1);
    assert_eq!(count(&app.get(&path(&org, "/members?q=b_b")).await), 0);
    app.get(&path(&org, "/members?workspace=nope"))
        .await
        .assert_problem(422, "validation_failed");
}

async fn members_are_updated_with_known_roles_and_workspaces_only(app: App) {
    let org = new_org(&app).await;
    let other = new_org(&app).await;
    let foreign_ws = app
        .post(&path(&other, "/workspaces"), json!({"name": "Theirs"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, m) = app.person(&org, "e@example.com", &[3]).await;
    let put = |body: Value| {
        let app = &app;
        let p = path(&org, &format!("/members/{m}"));
        async move {
            app.call(Method::PUT, &p, Some(&app.key), Some(&body), &[])
                .await
        }
    };
    let bad = put(json!({"roles": [3, 999], "workspaces": [foreign_ws]})).await;
    bad.assert_problem(422, "validation_failed");
    let fields = bad.field_errors();
    assert!(fields
        .iter()
        .any(|(f, c)| f == "roles" && c == "unknown_role"));
    assert!(fields
        .iter()
        .any(|(f, c)| f == "workspaces" && c == "unknown_workspace"));
    assert!(bad.text.contains("999") && bad.text.contains(&foreign_ws));
    for body in [
        json!({"roles": [3]}),
        json!({"workspaces": []}),
        json!({"roles": "3", "workspaces": []}),
        json!({"roles": [], "workspaces": []}),
        json!({"roles": [1], "workspaces": []}),
        json!({"roles": [3], "workspaces": [], "extra": 1}),
    ] {
        put(body.clone())
            .await
            .assert_problem(422, "validation_failed");
    }
    // Nothing changed by any of that.
    let now = app.get(&path(&org, &format!("/members/{m}"))).await;
    assert_eq!(now.body["data"]["roles"], json!([3]), "{}", now.text);
    let ok = put(json!({"roles": [4, 5, 4], "workspaces": []})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["message"], "Member update");
    assert_eq!(ok.body["data"]["roles"], json!([4, 5]));
    // Unknown member ids are 404, in any spelling.
    for id in ["99999", "abc", "-1"] {
        app.call(
            Method::PUT,
            &path(&org, &format!("/members/{id}")),
            Some(&app.key),
            Some(&json!({"roles": [3], "workspaces": []})),
            &[],
        )
        .await
        .assert_problem(404, "not_found");
    }
}

async fn the_owner_cannot_be_removed_or_demoted_and_ownership_transfers(app: App) {
    let (org, owner) = app.owned_org("own@example.com").await;
    let me = app
        .as_(Some(&owner), Method::GET, &path(&org, "/me"), None)
        .await;
    let owner_member = me.body["data"]["id"].as_i64().unwrap();
    let (_, admin) = app.person(&org, "adm@example.com", &[2]).await;
    app.delete(&path(&org, &format!("/members/{owner_member}")))
        .await
        .assert_problem(409, "owner_protected");
    app.call(
        Method::PUT,
        &path(&org, &format!("/members/{owner_member}")),
        Some(&app.key),
        Some(&json!({"roles": [2], "workspaces": []})),
        &[],
    )
    .await
    .assert_problem(409, "owner_protected");
    // Only the owner (or the platform) transfers.
    let admin_token = app.login("adm@example.com", "password123").await;
    app.as_(
        Some(&admin_token),
        Method::POST,
        &path(&org, "/transfer-ownership"),
        Some(json!({"memberId": admin})),
    )
    .await
    .assert_problem(403, "forbidden");
    app.as_(
        Some(&owner),
        Method::POST,
        &path(&org, "/transfer-ownership"),
        Some(json!({"memberId": 999_999})),
    )
    .await
    .assert_problem(422, "validation_failed");
    let before = app.get(&path(&org, "")).await.body["version"]
        .as_i64()
        .unwrap();
    let t = app
        .as_(
            Some(&owner),
            Method::POST,
            &path(&org, "/transfer-ownership"),
            Some(json!({"memberId": admin})),
        )
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    assert_eq!(t.body["version"].as_i64().unwrap(), before + 1);
    let old = app
        .get(&path(&org, &format!("/members/{owner_member}")))
        .await;
    assert_eq!(old.body["data"]["roles"], json!([2]));
    let new = app.get(&path(&org, &format!("/members/{admin}"))).await;
    assert_eq!(new.body["data"]["roles"], json!([1, 2]));
    assert_eq!(t.body["owner"], new.body["data"]["userId"]);
    // The former owner can now be removed.
    let d = app
        .delete(&path(&org, &format!("/members/{owner_member}")))
        .await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(d.body["message"], "Member deleted successfully");
    app.as_(Some(&owner), Method::GET, &path(&org, ""), None)
        .await
        .assert_problem(404, "not_found");
}

async fn nobody_grants_what_they_lack(app: App) {
    let org = new_org(&app).await;
    // A custom role that may manage members and invitations, and read, but not manage keys.
    let role = app
        .post(
            &path(&org, "/roles"),
            json!({"name": "people-ops", "permissions": ["org:read", "members:read", "members:manage", "invitations:manage"]}),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.text);
    let rid = role.body["id"].as_i64().unwrap();
    assert!(rid >= 100);
    let (ops, _) = app.person(&org, "ops@example.com", &[rid]).await;
    let (_, target) = app.person(&org, "t@example.com", &[3]).await;
    let put = |roles: Value| {
        let app = &app;
        let ops = ops.clone();
        let p = path(&org, &format!("/members/{target}"));
        async move {
            app.call(
                Method::PUT,
                &p,
                Some(&ops),
                Some(&json!({"roles": roles, "workspaces": []})),
                &[],
            )
            .await
        }
    };
    put(json!([2])).await.assert_problem(403, "forbidden");
    // The viewer role carries wallet:read, which this role lacks.
    put(json!([5])).await.assert_problem(403, "forbidden");
    let ok = put(json!([3])).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    // Inviting as admin, making a role or a key with more: refused too.
    app.as_(
        Some(&ops),
        Method::POST,
        &path(&org, "/invite"),
        Some(json!({"email": "x@example.com", "roles": [2]})),
    )
    .await
    .assert_problem(403, "forbidden");
    app.as_(
        Some(&ops),
        Method::POST,
        &path(&org, "/roles"),
        Some(json!({"name": "x", "permissions": ["keys:manage"]})),
    )
    .await
    .assert_problem(403, "forbidden");
    // An admin cannot be demoted by someone with less.
    let (_, admin) = app.person(&org, "a2@example.com", &[2]).await;
    app.call(
        Method::PUT,
        &path(&org, &format!("/members/{admin}")),
        Some(&ops),
        Some(&json!({"roles": [3], "workspaces": []})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
}

async fn custom_roles_and_workspaces(app: App) {
    let org = new_org(&app).await;
    let roles = app.get(&path(&org, "/roles")).await;
    let ids: Vec<i64> = roles.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    for (body, field) in [
        (json!({"permissions": []}), "name"),
        (json!({"name": "x"}), "permissions"),
        (
            json!({"name": "x", "permissions": ["org:fly"]}),
            "permissions[0]",
        ),
        (json!({"name": "admin", "permissions": []}), "name"),
        (json!({"name": "", "permissions": []}), "name"),
    ] {
        let a = app.post(&path(&org, "/roles"), body.clone()).await;
        a.assert_problem(422, "validation_failed");
        assert!(
            a.field_errors().iter().any(|(f, _)| f == field),
            "{body}: {}",
            a.text
        );
    }
    let r = app
        .post(
            &path(&org, "/roles"),
            json!({"name": "auditor", "description": "reads", "permissions": ["audit:read"]}),
        )
        .await;
    let rid = r.body["id"].as_i64().unwrap();
    app.post(
        &path(&org, "/roles"),
        json!({"name": "auditor", "permissions": []}),
    )
    .await
    .assert_problem(409, "role_name_taken");
    let p = app
        .patch(
            &path(&org, &format!("/roles/{rid}")),
            json!({"permissions": ["audit:read", "org:read"]}),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(p.body["permissions"], json!(["org:read", "audit:read"]));
    app.patch(&path(&org, "/roles/2"), json!({"name": "boss"}))
        .await
        .assert_problem(403, "forbidden");
    app.delete(&path(&org, "/roles/3"))
        .await
        .assert_problem(403, "forbidden");
    // In use: cannot be deleted; free again: it can.
    let (_, m) = app.person(&org, "aud@example.com", &[rid]).await;
    app.delete(&path(&org, &format!("/roles/{rid}")))
        .await
        .assert_problem(409, "role_in_use");
    // Workspaces.
    let w = app
        .post(&path(&org, "/workspaces"), json!({"name": "Sales"}))
        .await;
    assert_eq!(w.status, StatusCode::CREATED, "{}", w.text);
    let wid = w.body["id"].as_str().unwrap().to_owned();
    app.post(&path(&org, "/workspaces"), json!({"name": "Sales"}))
        .await
        .assert_problem(409, "workspace_name_taken");
    app.post(&path(&org, "/workspaces"), json!({"name": 5}))
        .await
        .assert_problem(422, "validation_failed");
    let a = app
        .call(
            Method::PUT,
            &path(&org, &format!("/members/{m}")),
            Some(&app.key),
            Some(&json!({"roles": [3], "workspaces": [wid]})),
            &[],
        )
        .await;
    assert_eq!(a.body["data"]["workspaces"], json!([wid]));
    let renamed = app
        .patch(
            &path(&org, &format!("/workspaces/{wid}")),
            json!({"name": "Sales EU"}),
        )
        .await;
    assert_eq!(renamed.body["name"], "Sales EU");
    let d = app.delete(&path(&org, &format!("/workspaces/{wid}"))).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    let member = app.get(&path(&org, &format!("/members/{m}"))).await;
    assert_eq!(member.body["data"]["workspaces"], json!([]));
    app.get(&path(&org, &format!("/workspaces/{wid}")))
        .await
        .assert_problem(404, "not_found");
    let d = app.delete(&path(&org, &format!("/roles/{rid}"))).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.text);
}

async fn invitations_conflict_list_revoke_and_resend(app: App) {
    let org = new_org(&app).await;
    let inv = |body: Value| {
        let app = &app;
        let p = path(&org, "/invite");
        async move { app.post(&p, body).await }
    };
    for (body, field) in [
        (json!({}), "email"),
        (json!({"email": "nope"}), "email"),
        (json!({"email": "a@example.com", "roles": [1]}), "roles"),
        (json!({"email": "a@example.com", "roles": [77]}), "roles"),
        (json!({"email": "a@example.com", "name": ""}), "name"),
        (json!({"email": "a@example.com", "token": "x"}), "token"),
    ] {
        let a = inv(body.clone()).await;
        a.assert_problem(422, "validation_failed");
        assert!(
            a.field_errors().iter().any(|(f, _)| f == field),
            "{body}: {}",
            a.text
        );
    }
    assert!(app.mailed_tokens().is_empty());
    let first = inv(json!({"email": "Inv@Example.com", "name": "Ivy"})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["message"], "Invitation sent successfully.");
    assert_eq!(first.body["data"]["roles"], json!([3]));
    assert_eq!(first.body["data"]["status"], "pending");
    let token1 = app.last_token();
    assert!(!first.text.contains(&token1));
    inv(json!({"email": "inv@example.com"}))
        .await
        .assert_problem(409, "invitation_pending");
    let id = first.body["data"]["id"].as_str().unwrap().to_owned();
    let list = app.get(&path(&org, "/invitations")).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert!(!list.text.contains(&token1));
    // Resend: a new token, the old one dead.
    let r = app
        .post(&path(&org, &format!("/invitations/{id}/resend")), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["data"]["sends"], 2);
    let token2 = app.last_token();
    assert_ne!(token1, token2);
    let body = json!({"password": "password123", "password_confirmation": "password123"});
    accept(&app, &token1, body.clone())
        .await
        .assert_problem(404, "not_found");
    // Revoke: the current token dies too.
    let d = app.delete(&path(&org, &format!("/invitations/{id}"))).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    app.delete(&path(&org, &format!("/invitations/{id}")))
        .await
        .assert_problem(409, "invitation_not_pending");
    accept(&app, &token2, body.clone())
        .await
        .assert_problem(410, "invitation_revoked");
    let all = app.get(&path(&org, "/invitations?status=all")).await;
    assert_eq!(all.body["data"][0]["status"], "revoked");
    // A member already: 409.
    app.person(&org, "member@example.com", &[3]).await;
    inv(json!({"email": "member@example.com"}))
        .await
        .assert_problem(409, "already_member");
}

async fn accepting_checks_the_password_and_spends_the_token(app: App) {
    let org = new_org(&app).await;
    app.post(&path(&org, "/invite"), json!({"email": "new@example.com"}))
        .await;
    let token = app.last_token();
    for (body, field) in [
        (json!({}), "password"),
        (
            json!({"password": "short", "password_confirmation": "short"}),
            "password",
        ),
        (
            json!({"password": "x".repeat(129), "password_confirmation": "x".repeat(129)}),
            "password",
        ),
        (
            json!({"password": "password123", "password_confirmation": "password124"}),
            "password_confirmation",
        ),
        (json!({"password": 12345678}), "password"),
    ] {
        let a = accept(&app, &token, body.clone()).await;
        a.assert_problem(422, "validation_failed");
        assert!(
            a.field_errors().iter().any(|(f, _)| f == field),
            "{body}: {}",
            a.text
        );
    }
    // None of that used the token or made an account.
    login_login(&app, "new@example.com", "password123")
        .await
        .assert_problem(401, "invalid_login");
    let ok = accept(
        &app,
        &token,
        json!({"password": "password123", "password_confirmation": "password123"}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    accept(
        &app,
        &token,
        json!({"password": "password123", "password_confirmation": "password123"}),
    )
    .await
    .assert_problem(409, "invitation_used");
    accept(&app, "obi_unknown", json!({}))
        .await
        .assert_problem(404, "not_found");
    app.login("new@example.com", "password123").await;
}

async fn an_existing_account_joins_without_its_password_changing(app: App) {
    let a = new_org(&app).await;
    let b = new_org(&app).await;
    app.person(&a, "both@example.com", &[3]).await;
    app.post(
        &path(&b, "/invite"),
        json!({"email": "both@example.com", "roles": [5]}),
    )
    .await;
    let token = app.last_token();
    let ok = accept(
        &app,
        &token,
        json!({"password": "another-password", "password_confirmation": "another-password"}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["message"], "Invitation accepted.");
    let s = app.login("both@example.com", "password123").await;
    login_login(&app, "both@example.com", "another-password")
        .await
        .assert_problem(401, "invalid_login");
    let me = app.as_(Some(&s), Method::GET, &path(&b, "/me"), None).await;
    assert_eq!(me.body["data"]["roles"], json!([5]));
}

async fn concurrent_accepts_let_exactly_one_win(app: App) {
    let org = new_org(&app).await;
    app.post(&path(&org, "/invite"), json!({"email": "race@example.com"}))
        .await;
    let token = app.last_token();
    let body = json!({"password": "password123", "password_confirmation": "password123"});
    let tries = (0..8).map(|_| accept(&app, &token, body.clone()));
    // Polled together: all eight are in flight at once.
    let answers = futures::future::join_all(tries).await;
    let won = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    let lost = answers
        .iter()
        .filter(|a| a.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((won, lost), (1, 7), "{answers:?}");
    let members = app.get(&path(&org, "/members")).await;
    assert_eq!(members.body["data"]["total"], 1);
}

async fn organization_keys_act_within_their_roles(app: App) {
    let org = new_org(&app).await;
    let k = app
        .post(
            &path(&org, "/api-keys"),
            json!({"name": "reader", "roles": [5]}),
        )
        .await;
    assert_eq!(k.status, StatusCode::CREATED, "{}", k.text);
    assert_eq!(k.body["kind"], "organization");
    let key = k.body["key"].as_str().unwrap().to_owned();
    let kid = k.body["id"].as_str().unwrap().to_owned();
    let r = app
        .as_(Some(&key), Method::GET, &path(&org, ""), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.as_(
        Some(&key),
        Method::PATCH,
        &path(&org, ""),
        Some(json!({"name": "X"})),
    )
    .await
    .assert_problem(403, "forbidden");
    let list = app
        .as_(Some(&key), Method::GET, "/api/organizations", None)
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    // Bad bodies.
    for body in [
        json!({"roles": [5]}),
        json!({"name": "x"}),
        json!({"name": "x", "roles": [1]}),
        json!({"name": "x", "roles": [5], "scope": "partner"}),
        json!({"name": "x", "roles": [5], "scope": "everything"}),
        json!({"name": "x", "roles": [5], "kind": "platform"}),
    ] {
        app.post(&path(&org, "/api-keys"), body)
            .await
            .assert_problem(422, "validation_failed");
    }
    let keys = app.get(&path(&org, "/api-keys")).await;
    assert_eq!(keys.body["data"].as_array().unwrap().len(), 1);
    assert!(!keys.text.contains(&key));
    let d = app.delete(&path(&org, &format!("/api-keys/{kid}"))).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    app.as_(Some(&key), Method::GET, &path(&org, ""), None)
        .await
        .assert_problem(401, "revoked_credentials");
    // A platform key is not an organization's key.
    let platform = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "p", "kind": "platform"}),
        )
        .await;
    let pid = platform.body["id"].as_str().unwrap();
    app.delete(&path(&org, &format!("/api-keys/{pid}")))
        .await
        .assert_problem(404, "not_found");
}

async fn another_organizations_credentials_get_404(app: App) {
    let (a, owner_a) = app.owned_org("oa@example.com").await;
    let b = new_org(&app).await;
    let (_, mb) = app.person(&b, "mb@example.com", &[3]).await;
    let kb = app
        .post(&path(&b, "/api-keys"), json!({"name": "k", "roles": [2]}))
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for (m, p) in [
        (Method::GET, path(&b, "")),
        (Method::GET, path(&b, "/members")),
        (Method::GET, path(&b, &format!("/members/{mb}"))),
        (Method::DELETE, path(&b, &format!("/members/{mb}"))),
        (Method::GET, path(&b, "/roles")),
        (Method::GET, path(&b, "/workspaces")),
        (Method::GET, path(&b, "/invitations")),
        (Method::GET, path(&b, "/api-keys")),
        (Method::GET, path(&b, "/me")),
    ] {
        app.as_(Some(&owner_a), m.clone(), &p, None)
            .await
            .assert_problem(404, "not_found");
    }
    app.as_(Some(&kb), Method::GET, &path(&a, ""), None)
        .await
        .assert_problem(404, "not_found");
    app.as_(
        Some(&owner_a),
        Method::POST,
        &path(&b, "/invite"),
        Some(json!({"email": "x@example.com"})),
    )
    .await
    .assert_problem(404, "not_found");
}

async fn a_person_lists_only_their_organizations(app: App) {
    let (a, owner) = app.owned_org("lister@example.com").await;
    new_org(&app).await;
    let list = app
        .as_(Some(&owner), Method::GET, "/api/organizations", None)
        .await;
    let ids: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    // The one they own, and the scratch one they were invited into.
    assert_eq!(ids.len(), 2, "{}", list.text);
    assert!(ids.contains(&a.as_str()));
    app.as_(
        Some(&owner),
        Method::GET,
        "/api/organizations?includeDeleted=true",
        None,
    )
    .await
    .assert_problem(403, "forbidden");
}

/// The invitation goes out over a real SMTP server (aiosmtpd, started here); the token is read
/// from the received message and accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_travel_over_real_smtp() {
    let smtp = orgbase_mail::testing::SmtpServer::start();
    let app = App::start_with(
        orgbase_store::testing::sqlite().await,
        orgbase_api::ApiConfig {
            smtp_url: Some(smtp.url()),
            public_url: "https://orgbase.example".into(),
            ..Default::default()
        },
    )
    .await;
    let org = new_org(&app).await;
    let a = app
        .post(
            &path(&org, "/invite"),
            json!({"email": "smtp@example.com", "name": "Sam"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(orgbase_mail::testing::header(m, "To")
        .unwrap()
        .contains("smtp@example.com"));
    assert!(orgbase_mail::testing::header(m, "Subject")
        .unwrap()
        .contains("Acme"));
    let body = orgbase_mail::testing::body_text(m);
    assert!(
        body.contains("https://orgbase.example/invite/obi_"),
        "{body}"
    );
    let token = crate::invite_token(&body).unwrap();
    assert!(!a.text.contains(&token));
    let ok = accept(
        &app,
        &token,
        json!({"password": "password123", "password_confirmation": "password123"}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    app.login("smtp@example.com", "password123").await;
    // Nothing went to the outbox folder.
    assert!(app.mailed_tokens().is_empty());
}

/// A mail server that cannot be reached: 502, and the invitation is kept to be resent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_mail_server_is_a_502_and_the_invitation_is_kept() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = App::start_with(
        orgbase_store::testing::sqlite().await,
        orgbase_api::ApiConfig {
            smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
            ..Default::default()
        },
    )
    .await;
    let org = new_org(&app).await;
    let a = app
        .post(&path(&org, "/invite"), json!({"email": "down@example.com"}))
        .await;
    a.assert_problem(502, "mail_failed");
    let list = app.get(&path(&org, "/invitations")).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
}

/// A session past its lifetime is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_refused() {
    let app = App::start_with(
        orgbase_store::testing::sqlite().await,
        orgbase_api::ApiConfig {
            session_ttl: chrono::Duration::seconds(-1),
            ..Default::default()
        },
    )
    .await;
    let org = new_org(&app).await;
    app.post(&path(&org, "/invite"), json!({"email": "late@example.com"}))
        .await;
    let token = app.last_token();
    accept(
        &app,
        &token,
        json!({"password": "password123", "password_confirmation": "password123"}),
    )
    .await;
    let s = app.login("late@example.com", "password123").await;
    app.as_(Some(&s), Method::GET, "/api/auth/me", None)
        .await
        .assert_problem(401, "expired_credentials");
}

/// An invitation past its lifetime cannot be accepted, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_invitation_is_gone() {
    let app = App::start_with(
        orgbase_store::testing::sqlite().await,
        orgbase_api::ApiConfig {
            invitation_ttl: chrono::Duration::seconds(-1),
            ..Default::default()
        },
    )
    .await;
    let org = new_org(&app).await;
    app.post(&path(&org, "/invite"), json!({"email": "exp@example.com"}))
        .await;
    accept(
        &app,
        &app.last_token(),
        json!({"password": "password123", "password_confirmation": "password123"}),
    )
    .await
    .assert_problem(410, "invitation_expired");
    login_login(&app, "exp@example.com", "password123")
        .await
        .assert_problem(401, "invalid_login");
    // An expired invitation does not block a new one.
    let again = app
        .post(&path(&org, "/invite"), json!({"email": "exp@example.com"}))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
}

/// With the member directory on for every organization, pages answer exactly as the plain query
/// does, and follow joins and leaves at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_directory_pages_like_the_query() {
    for db in [
        Some(orgbase_store::testing::sqlite().await),
        orgbase_store::testing::postgres().await,
    ]
    .into_iter()
    .flatten()
    {
        let direct = App::start_with(
            db,
            orgbase_api::ApiConfig {
                member_directory_min: 0,
                ..Default::default()
            },
        )
        .await;
        let org = new_org(&direct).await;
        let mut members = Vec::new();
        for i in 0..5 {
            members.push(
                direct
                    .person(&org, &format!("d{i}@example.com"), &[3])
                    .await
                    .1,
            );
        }
        let first = pages(&direct, &org, "page=2&per_page=2").await;
        assert_eq!(first["data"]["total"], 5);
        let got: Vec<i64> = first["data"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect();
        assert_eq!(got, members[2..4].to_vec());
        assert_eq!(first["data"]["from"], 3);
        assert_eq!(first["data"]["to"], 4);
        assert_eq!(
            pages(&direct, &org, "page=4&per_page=2").await["data"]["data"],
            json!([])
        );
        // A leave shows at once.
        direct
            .delete(&path(&org, &format!("/members/{}", members[2])))
            .await;
        let again = pages(&direct, &org, "page=2&per_page=2").await;
        assert_eq!(again["data"]["total"], 4);
        assert_eq!(again["data"]["data"][0]["id"], members[3]);
        // A join too.
        let late = direct.person(&org, "late@example.com", &[3]).await.1;
        let last = pages(&direct, &org, "page=1&per_page=100").await;
        assert_eq!(last["data"]["total"], 5);
        assert_eq!(last["data"]["data"][4]["id"], late);
    }
}

/// Member pages are cached, answer and all: each change that a page shows is on the next read.
async fn cached_member_pages_follow_every_change_they_show(app: App) {
    let (org, owner) = app.owned_org("first@example.com").await;
    let (_, m) = app.person(&org, "c@example.com", &[3]).await;
    let member = |page: &Value, id: &Value| {
        page["data"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| &x["id"] == id)
            .cloned()
    };
    let m = json!(m);
    let q = "page=1&per_page=15";
    let first = pages(&app, &org, q).await;
    assert_eq!(first["data"]["total"], 2);
    assert_eq!(pages(&app, &org, q).await, first, "the same answer again");
    // Roles.
    let put = |body: Value| {
        let p = path(&org, &format!("/members/{m}"));
        let app = &app;
        async move {
            let a = app
                .call(Method::PUT, &p, Some(&app.key), Some(&body), &[])
                .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        }
    };
    put(json!({"roles": [4], "workspaces": []})).await;
    assert_eq!(
        member(&pages(&app, &org, q).await, &m).unwrap()["roles"],
        json!([4])
    );
    // Workspaces: given, filtered on, and gone with the workspace.
    let ws = app
        .post(&path(&org, "/workspaces"), json!({"name": "Ops"}))
        .await
        .body["id"]
        .clone();
    let by_ws = format!("{q}&workspace={}", ws.as_str().unwrap());
    assert_eq!(pages(&app, &org, &by_ws).await["data"]["total"], 0);
    put(json!({"roles": [4], "workspaces": [ws]})).await;
    assert_eq!(
        member(&pages(&app, &org, q).await, &m).unwrap()["workspaces"],
        json!([ws])
    );
    assert_eq!(pages(&app, &org, &by_ws).await["data"]["total"], 1);
    let gone = app
        .delete(&path(
            &org,
            &format!("/workspaces/{}", ws.as_str().unwrap()),
        ))
        .await;
    assert!(gone.status.is_success(), "{}", gone.text);
    assert_eq!(
        member(&pages(&app, &org, q).await, &m).unwrap()["workspaces"],
        json!([])
    );
    assert_eq!(pages(&app, &org, &by_ws).await["data"]["total"], 0);
    // A person's e-mail, changed through the partner settings API (the owner's).
    let me = app
        .as_(Some(&owner), Method::GET, &path(&org, "/me"), None)
        .await;
    let owner_member = me.body["data"]["id"].clone();
    assert!(owner_member.is_i64(), "{}", me.text);
    let moved = app
        .as_(
            None,
            Method::POST,
            &format!(
                "/api/v2/updateOrganization?token={}&targetOrganizationId={org}",
                app.key
            ),
            Some(json!({"email": "moved@example.com"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(
        member(&pages(&app, &org, q).await, &owner_member).unwrap()["email"],
        "moved@example.com"
    );
    // Leaves and joins.
    app.delete(&path(&org, &format!("/members/{m}"))).await;
    let after = pages(&app, &org, q).await;
    assert_eq!(after["data"]["total"], 1);
    assert!(member(&after, &m).is_none());
    app.person(&org, "d@example.com", &[3]).await;
    assert_eq!(pages(&app, &org, q).await["data"]["total"], 2);
}

async fn pages(app: &App, org: &str, q: &str) -> Value {
    app.get(&path(org, &format!("/members?{q}"))).await.body
}

async fn creating_sets_no_platform_only_field(app: App) {
    let (_, owner) = app.owned_org("maker@example.com").await;
    let partner = app
        .org(json!({"name": "P", "countryCode": "US", "type": "partner"}))
        .await;
    for body in [
        json!({"name": "X", "countryCode": "US", "type": "partner"}),
        json!({"name": "X", "countryCode": "US", "parentId": partner["id"]}),
        json!({"name": "X", "countryCode": "US", "rateLimit": 1000}),
        json!({"name": "X", "countryCode": "US", "entitlements": ["all"]}),
        json!({"name": "X", "countryCode": "US", "kycLevel": 3}),
        json!({"name": "X", "countryCode": "US", "status": "suspended", "statusReason": "x"}),
    ] {
        app.as_(
            Some(&owner),
            Method::POST,
            "/api/organizations",
            Some(body.clone()),
        )
        .await
        .assert_problem(403, "forbidden");
    }
    // A partner may create a child switched off, but not suspended.
    let k = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "p", "kind": "partner", "organizationId": partner["id"]}),
        )
        .await;
    let pk = k.body["key"].as_str().unwrap().to_owned();
    let off = app
        .as_(
            Some(&pk),
            Method::POST,
            "/api/organizations",
            Some(json!({"name": "Off", "countryCode": "US", "status": "inactive"})),
        )
        .await;
    assert_eq!(off.status, StatusCode::CREATED, "{}", off.text);
    assert_eq!(off.body["status"], "inactive");
    app.as_(
        Some(&pk),
        Method::POST,
        "/api/organizations",
        Some(json!({"name": "S", "countryCode": "US", "status": "suspended", "statusReason": "x"})),
    )
    .await
    .assert_problem(403, "forbidden");
}

/// The platform names an owner (invited to set a password), ownership moves on, the former owner
/// is removed: their old invitation must not bring them back, let alone as a second owner.
async fn an_owner_invitation_never_makes_a_second_owner(app: App) {
    let a = app
        .post(
            "/api/organizations",
            json!({"name": "Handed Over", "countryCode": "US", "ownerEmail": "first@example.com"}),
        )
        .await;
    let org = a.body["id"].as_str().unwrap().to_owned();
    let first_token = app.last_token();
    let (_, second) = app.person(&org, "second@example.com", &[3]).await;
    let t = app
        .post(
            &path(&org, "/transfer-ownership"),
            json!({"memberId": second}),
        )
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    let members = app.get(&path(&org, "/members")).await;
    let first = members.body["data"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "first@example.com")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let d = app.delete(&path(&org, &format!("/members/{first}"))).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    accept(
        &app,
        &first_token,
        json!({"password": "password123", "password_confirmation": "password123"}),
    )
    .await
    .assert_problem(410, "invitation_void");
    let members = app.get(&path(&org, "/members")).await;
    assert_eq!(members.body["data"]["total"], 1, "{}", members.text);
    assert_eq!(members.body["data"]["data"][0]["roles"], json!([1, 3]));
}

async fn inviting_with_default_roles_still_checks_the_grant(app: App) {
    let org = new_org(&app).await;
    let role = app
        .post(
            &path(&org, "/roles"),
            json!({"name": "inviter", "permissions": ["invitations:manage"]}),
        )
        .await;
    let (inviter, _) = app
        .person(
            &org,
            "inviter@example.com",
            &[role.body["id"].as_i64().unwrap()],
        )
        .await;
    // The default role (member) carries org:read and members:read, which the inviter lacks.
    app.as_(
        Some(&inviter),
        Method::POST,
        &path(&org, "/invite"),
        Some(json!({"email": "friend@example.com"})),
    )
    .await
    .assert_problem(403, "forbidden");
}

async fn parallel_guesses_do_not_slip_past_the_throttle(app: App) {
    let org = new_org(&app).await;
    app.person(&org, "target@example.com", &[3]).await;
    let guesses = (0..20).map(|_| login_login(&app, "target@example.com", "wrong-guess"));
    let answers = futures::future::join_all(guesses).await;
    let wrong = answers
        .iter()
        .filter(|a| a.status == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((wrong, throttled), (5, 15), "{answers:?}");
}

async fn accepting_without_a_body_and_getting_a_session(app: App) {
    let a = new_org(&app).await;
    let b = new_org(&app).await;
    app.person(&a, "nobody-body@example.com", &[3]).await;
    app.post(
        &path(&b, "/invite"),
        json!({"email": "nobody-body@example.com"}),
    )
    .await;
    let token = app.last_token();
    // A person with an account sends nothing at all, as the document allows.
    let res = app
        .http
        .post(format!(
            "{}/api/organizations/invite/{token}/accept",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["session"], Value::Null);
    // A new person who sets a password gets a session.
    app.post(&path(&b, "/invite"), json!({"email": "fresh@example.com"}))
        .await;
    let ok = accept(
        &app,
        &app.last_token(),
        json!({"password": "password123", "password_confirmation": "password123"}),
    )
    .await;
    let session = ok.body["data"]["session"]["token"].as_str().unwrap();
    let me = app
        .as_(Some(session), Method::GET, "/api/auth/me", None)
        .await;
    assert_eq!(me.body["user"]["email"], "fresh@example.com");
}

/// Ids of another organization's members, roles, workspaces, invitations and keys, under the
/// caller's own organization: 404, never 403 or a success.
async fn another_tenants_ids_under_ones_own_organization_are_404(app: App) {
    let (mine, owner) = app.owned_org("mine@example.com").await;
    let theirs = new_org(&app).await;
    let (_, their_member) = app.person(&theirs, "theirs@example.com", &[3]).await;
    let role = app
        .post(
            &path(&theirs, "/roles"),
            json!({"name": "r", "permissions": []}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let ws = app
        .post(&path(&theirs, "/workspaces"), json!({"name": "w"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let inv = app
        .post(
            &path(&theirs, "/invite"),
            json!({"email": "inv@example.com"}),
        )
        .await
        .body["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = app
        .post(
            &path(&theirs, "/api-keys"),
            json!({"name": "k", "roles": [5]}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (m, p, body) in [
        (Method::GET, format!("/members/{their_member}"), None),
        (
            Method::PUT,
            format!("/members/{their_member}"),
            Some(json!({"roles": [3], "workspaces": []})),
        ),
        (Method::DELETE, format!("/members/{their_member}"), None),
        (Method::GET, format!("/roles/{role}"), None),
        (
            Method::PATCH,
            format!("/roles/{role}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/roles/{role}"), None),
        (Method::GET, format!("/workspaces/{ws}"), None),
        (
            Method::PATCH,
            format!("/workspaces/{ws}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/workspaces/{ws}"), None),
        (Method::DELETE, format!("/invitations/{inv}"), None),
        (Method::POST, format!("/invitations/{inv}/resend"), None),
        (Method::DELETE, format!("/api-keys/{key}"), None),
        (
            Method::POST,
            "/transfer-ownership".to_string(),
            Some(json!({"memberId": their_member})),
        ),
    ] {
        let a = app
            .as_(Some(&owner), m.clone(), &path(&mine, &p), body)
            .await;
        assert!(
            a.status == StatusCode::NOT_FOUND
                || (a.status == StatusCode::UNPROCESSABLE_ENTITY && p == "/transfer-ownership"),
            "{m} {p}: {} {}",
            a.status,
            a.text
        );
    }
    // And nothing of theirs changed.
    let still = app
        .get(&path(&theirs, &format!("/members/{their_member}")))
        .await;
    assert_eq!(still.status, StatusCode::OK);
    assert_eq!(
        app.get(&path(&theirs, "/workspaces")).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
