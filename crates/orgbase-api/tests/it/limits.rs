//! Rate limits: an organization's credentials share its bucket (GCRA, a burst of twice its
//! `rateLimit`), over it every surface answers 429 in its own shape with `Retry-After` and the
//! `RateLimit` headers, a refused request changes nothing; with Redis the bucket holds across
//! nodes, and without Redis requests go through.
use orgbase_api::ApiConfig;
use orgbase_domain::people::{ROLE_ADMIN, ROLE_VIEWER};
use orgbase_testkit::redis::RedisServer;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::partners::partner;
use crate::{Answer, App};

crate::db_tests!(limited_sqlite, limited_postgres;
    an_organizations_credentials_share_its_bucket_and_get_429,
    a_refused_request_changes_nothing_and_keeps_its_idempotency_key,
    every_surface_answers_429_in_its_own_shape,
    the_platform_limit_is_per_key_and_off_by_default,
    the_limit_holds_across_nodes_through_redis,
    without_redis_requests_go_through_and_are_counted,
    failed_logins_are_throttled_across_nodes_through_redis,
);

crate::api_tests!(the_limit_in_force_is_the_organizations_own_or_its_plans);

fn limited(redis_url: Option<String>) -> ApiConfig {
    ApiConfig {
        webhook_allow_private: true,
        redis_url,
        ..ApiConfig::default()
    }
}

/// An organization limited to `per_second` (a burst of twice that): its id.
async fn org_limited_to(app: &App, per_second: i64) -> String {
    let o = app
        .org(json!({"name": "Limited", "countryCode": "US"}))
        .await;
    let id = o["id"].as_str().unwrap().to_owned();
    let a = app
        .patch(
            &format!("/api/organizations/{id}"),
            json!({"rateLimit": per_second}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["rateLimit"], per_second);
    assert_eq!(a.body["rateLimitSource"], "organization");
    id
}

/// A key of organization `id` with `role`.
async fn org_key(app: &App, id: &str, role: i64) -> String {
    let k = app
        .post(
            &format!("/api/organizations/{id}/api-keys"),
            json!({"name": "integration", "roles": [role]}),
        )
        .await;
    assert_eq!(k.status, StatusCode::CREATED, "{}", k.text);
    k.body["key"].as_str().unwrap().to_owned()
}

async fn get_as(app: &App, base: &str, token: &str, path: &str) -> Answer {
    let res = app
        .http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    App::answer(res).await
}

#[track_caller]
fn assert_headers(a: &Answer, policy: &str, remaining: u32) {
    assert_eq!(a.header("ratelimit-policy"), Some(policy), "{}", a.text);
    let state = a.header("ratelimit").unwrap_or_default();
    let name = policy.split(';').next().unwrap();
    assert!(
        state.starts_with(&format!("{name};r={remaining};t=")),
        "RateLimit: {state}, expected r={remaining}"
    );
}

#[track_caller]
fn assert_retry_after(a: &Answer) {
    let secs: u64 = a
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After: {:?}", a.header("retry-after")));
    assert!((1..=2).contains(&secs), "Retry-After: {secs}");
}

/// A key and a member's session acting in the organization spend one bucket; a stranger's
/// session and the platform spend none of it; another organization has its own.
async fn an_organizations_credentials_share_its_bucket_and_get_429(
    db: orgbase_store::testing::TestDb,
) {
    let app = App::start_limited(db, limited(None)).await;
    let id = org_limited_to(&app, 2).await;
    let other = org_limited_to(&app, 2).await;
    let key = org_key(&app, &id, ROLE_VIEWER).await;
    let other_key = org_key(&app, &other, ROLE_VIEWER).await;
    let (session, _) = app.person(&id, "member@example.com", &[ROLE_ADMIN]).await;
    let policy = "\"organization\";q=4;w=2";
    let path = format!("/api/organizations/{id}");
    // The burst: 4, shared by the key and the session.
    for (i, token) in [&key, &session, &key, &session].into_iter().enumerate() {
        let a = get_as(&app, &app.base, token, &path).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_headers(&a, policy, 3 - i as u32);
    }
    for token in [&key, &session] {
        let a = get_as(&app, &app.base, token, &path).await;
        a.assert_problem(429, "rate_limited");
        assert_retry_after(&a);
        assert_headers(&a, policy, 0);
    }
    // The platform is not limited by default, and says nothing of a limit.
    let a = app.get(&path).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.header("ratelimit").is_none(), "{:?}", a.headers);
    // Another organization's bucket is its own.
    let a = get_as(
        &app,
        &app.base,
        &other_key,
        &format!("/api/organizations/{other}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_headers(&a, policy, 3);
    // A person's session outside any organization spends nothing.
    let a = get_as(&app, &app.base, &session, "/api/auth/me").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(a.header("ratelimit").is_none());
    // A credential of another organization reaching for this one gets 404 and spends nothing
    // of the other's bucket (nor of its own beyond the one request).
    let a = get_as(&app, &app.base, &other_key, &path).await;
    a.assert_problem(404, "not_found");
    assert_headers(&a, policy, 2);
    // No credential, a wrong one: refused as ever, never counted.
    let a = app.as_(None, Method::GET, &path, None).await;
    a.assert_problem(401, "missing_credentials");
    let a = get_as(&app, &app.base, "obk_not_a_key", &path).await;
    a.assert_problem(401, "invalid_credentials");
    assert!(a.header("ratelimit").is_none());
    // The bucket refills: one request per half second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let a = get_as(&app, &app.base, &key, &path).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

/// Invites `new@example.com` into the organization at `path` with `key`, always under the
/// `Idempotency-Key` `invite-1`.
async fn invite(app: &App, path: &str, key: &str) -> Answer {
    let body = json!({"email": "new@example.com", "name": "New", "roles": [ROLE_VIEWER]});
    app.call(
        Method::POST,
        &format!("{path}/invite"),
        Some(key),
        Some(&body),
        &[("idempotency-key", "invite-1")],
    )
    .await
}

/// Over the limit, a change is refused before it runs: nothing changes, no audit entry is
/// written, and its `Idempotency-Key` is not claimed (the retry runs).
async fn a_refused_request_changes_nothing_and_keeps_its_idempotency_key(
    db: orgbase_store::testing::TestDb,
) {
    let app = App::start_limited(db, limited(None)).await;
    let id = org_limited_to(&app, 1).await;
    let key = org_key(&app, &id, ROLE_ADMIN).await;
    let path = format!("/api/organizations/{id}");
    for _ in 0..2 {
        let a = get_as(&app, &app.base, &key, &path).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }
    let entries = app.get(&format!("{path}/audit-log?limit=100")).await.body["data"]
        .as_array()
        .unwrap()
        .len();
    let a = app
        .call(
            Method::PATCH,
            &path,
            Some(&key),
            Some(&json!({"name": "Renamed"})),
            &[],
        )
        .await;
    a.assert_problem(429, "rate_limited");
    let a = invite(&app, &path, &key).await;
    a.assert_problem(429, "rate_limited");
    let o = app.get(&path).await;
    assert_eq!(o.body["name"], "Limited");
    assert_eq!(o.body["version"], 2, "{}", o.text);
    let after = app.get(&format!("{path}/audit-log?limit=100")).await;
    assert_eq!(after.body["data"].as_array().unwrap().len(), entries);
    assert!(app.mailed_tokens().is_empty());
    // Later, the same keyed request runs (its key was never claimed) and is then replayed.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let a = invite(&app, &path, &key).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(app.mailed_tokens().len(), 1);
}

/// The partner settings API answers `{success: false, message}`, the properties API
/// `{data: null, errors: [...]}`, each with `Retry-After`; a partner key spends its partner's
/// bucket, whichever child it acts on.
async fn every_surface_answers_429_in_its_own_shape(db: orgbase_store::testing::TestDb) {
    let app = App::start_limited(db, limited(None)).await;
    let (pid, pk) = partner(&app, "Reseller").await;
    let a = app
        .patch(
            &format!("/api/organizations/{pid}"),
            json!({"rateLimit": 1}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let kid = crate::partners::child(&app, &pk, "Customer").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The child's creation took one of the partner's two; one more.
    let a = get_as(&app, &app.base, &pk, &format!("/api/organizations/{kid}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_headers(&a, "\"organization\";q=2;w=2", 0);
    let v2 = app
        .http
        .post(format!(
            "{}/api/v2/updateOrganization?token={pk}&targetOrganizationId={kid}",
            app.base
        ))
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    let v2 = App::answer(v2).await;
    assert_eq!(v2.status, StatusCode::TOO_MANY_REQUESTS, "{}", v2.text);
    assert_eq!(v2.body["success"], false, "{}", v2.text);
    assert!(v2.body["message"].as_str().unwrap().contains("rate limit"));
    assert_retry_after(&v2);
    let v1 = app
        .http
        .patch(format!("{}/v1/orgs/{kid}/properties", app.base))
        .header("authorization", &pk)
        .json(&json!({"org_display_name": "Renamed"}))
        .send()
        .await
        .unwrap();
    let v1 = App::answer(v1).await;
    assert_eq!(v1.status, StatusCode::TOO_MANY_REQUESTS, "{}", v1.text);
    assert_eq!(v1.body["data"], serde_json::Value::Null, "{}", v1.text);
    assert_eq!(v1.body["errors"][0]["error"], "RATE_LIMITED", "{}", v1.text);
    assert_retry_after(&v1);
    assert_eq!(
        app.get(&format!("/api/organizations/{kid}")).await.body["name"],
        "Customer"
    );
}

/// `ORGBASE_PLATFORM_RATE_LIMIT` limits each platform key on its own.
async fn the_platform_limit_is_per_key_and_off_by_default(db: orgbase_store::testing::TestDb) {
    let app = App::start_limited(
        db,
        ApiConfig {
            platform_rate_limit: Some(1),
            ..limited(None)
        },
    )
    .await;
    let a = app.get("/api/organizations").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_headers(&a, "\"platform\";q=2;w=2", 1);
    let k = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "second", "kind": "platform"}),
        )
        .await;
    assert_eq!(k.status, StatusCode::CREATED, "{}", k.text);
    let a = app.get("/api/organizations").await;
    a.assert_problem(429, "rate_limited");
    assert_retry_after(&a);
    // The second key has its own bucket.
    let second = k.body["key"].as_str().unwrap();
    let a = get_as(&app, &app.base, second, "/api/organizations").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_headers(&a, "\"platform\";q=2;w=2", 1);
}

/// Two nodes on one Redis spend one bucket: the burst taken on one, the next request on the
/// other is refused. Without Redis each node would allow its own burst.
async fn the_limit_holds_across_nodes_through_redis(db: orgbase_store::testing::TestDb) {
    let redis = RedisServer::start();
    let app = App::start_limited(db, limited(Some(redis.url()))).await;
    let other = app.another_node().await;
    let id = org_limited_to(&app, 2).await;
    let key = org_key(&app, &id, ROLE_VIEWER).await;
    let path = format!("/api/organizations/{id}");
    for (i, base) in [&app.base, &other, &app.base, &other]
        .into_iter()
        .enumerate()
    {
        let a = get_as(&app, base, &key, &path).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_headers(&a, "\"organization\";q=4;w=2", 3 - i as u32);
    }
    for base in [&app.base, &other] {
        let a = get_as(&app, base, &key, &path).await;
        a.assert_problem(429, "rate_limited");
        assert_retry_after(&a);
    }
}

/// Redis gone: requests are let through (without `RateLimit` headers, which would be made up),
/// the metric counts them, `/readyz` stays ready; Redis back: limits hold again.
async fn without_redis_requests_go_through_and_are_counted(db: orgbase_store::testing::TestDb) {
    let mut redis = RedisServer::start();
    let app = App::start_limited(db, limited(Some(redis.url()))).await;
    let id = org_limited_to(&app, 1).await;
    let key = org_key(&app, &id, ROLE_VIEWER).await;
    let path = format!("/api/organizations/{id}");
    for _ in 0..2 {
        let a = get_as(&app, &app.base, &key, &path).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }
    get_as(&app, &app.base, &key, &path)
        .await
        .assert_problem(429, "rate_limited");
    redis.stop();
    for _ in 0..5 {
        let a = get_as(&app, &app.base, &key, &path).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert!(a.header("ratelimit").is_none(), "{:?}", a.headers);
    }
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    let metrics = app.get("/metrics").await.text;
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("orgbase_rate_limit_failed_open_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no failed-open metric in {metrics}"));
    assert!(counted >= 5, "counted {counted}");
    // Back (empty): the limiter reconnects within a second or two and limits again.
    redis.resume();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let a = get_as(&app, &app.base, &key, &path).await;
        if a.header("ratelimit").is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the limiter never reconnected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut refused = false;
    for _ in 0..3 {
        refused |=
            get_as(&app, &app.base, &key, &path).await.status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(refused, "limits hold again once Redis is back");
}

/// The failed-login throttle is on the same limiter: five failures on one node, the sixth
/// attempt on the other is refused, the right password too.
async fn failed_logins_are_throttled_across_nodes_through_redis(
    db: orgbase_store::testing::TestDb,
) {
    let redis = RedisServer::start();
    let app = App::start_limited(db, limited(Some(redis.url()))).await;
    let other = app.another_node().await;
    let org = app
        .org(json!({"name": "People", "countryCode": "US"}))
        .await;
    app.person(
        org["id"].as_str().unwrap(),
        "who@example.com",
        &[ROLE_VIEWER],
    )
    .await;
    let login = |base: String, password: &'static str| {
        let http = app.http.clone();
        async move {
            let res = http
                .post(format!("{base}/api/auth/login"))
                .json(&json!({"email": "who@example.com", "password": password}))
                .send()
                .await
                .unwrap();
            App::answer(res).await
        }
    };
    for _ in 0..5 {
        login(app.base.clone(), "wrong-password")
            .await
            .assert_problem(401, "invalid_login");
    }
    let a = login(other.clone(), "password123").await;
    a.assert_problem(429, "too_many_requests");
    assert!(a.header("retry-after").is_some());
}

/// The limit in force: the plan's unless the platform set the organization's own; `null` returns
/// it to the plan's. The properties API shows the limit in force.
async fn the_limit_in_force_is_the_organizations_own_or_its_plans(app: App) {
    let a = app
        .post(
            "/api/admin/plans",
            json!({"id": "busy", "name": "Busy", "price": 0, "currency": "usd",
                   "interval": "month", "rateLimit": 20, "public": true}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let o = app.org(json!({"name": "Plan", "countryCode": "US"})).await;
    assert_eq!(o["rateLimit"], 5);
    assert_eq!(o["rateLimitSource"], "plan");
    let id = o["id"].as_str().unwrap();
    let path = format!("/api/organizations/{id}");
    let a = app.patch(&path, json!({"productPlanId": "busy"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["rateLimit"], 20);
    assert_eq!(a.body["rateLimitSource"], "plan");
    let a = app.patch(&path, json!({"rateLimit": 3})).await;
    assert_eq!(a.body["rateLimit"], 3, "{}", a.text);
    assert_eq!(a.body["rateLimitSource"], "organization");
    let p = app
        .http
        .patch(format!("{}/v1/orgs/{id}/properties", app.base))
        .header("authorization", &app.key)
        .json(&json!({"updates": {}}))
        .send()
        .await
        .unwrap();
    let p = App::answer(p).await;
    assert_eq!(p.body["data"]["org_rate_limit"], 3, "{}", p.text);
    let a = app.patch(&path, json!({"rateLimit": null})).await;
    assert_eq!(a.body["rateLimit"], 20, "{}", a.text);
    assert_eq!(a.body["rateLimitSource"], "plan");
    // Bad values change nothing.
    for bad in [json!(0), json!(100_001), json!("fast"), json!(1.5)] {
        let a = app.patch(&path, json!({"rateLimit": bad})).await;
        a.assert_problem(422, "validation_failed");
    }
    assert_eq!(app.get(&path).await.body["rateLimitSource"], "plan");
}
