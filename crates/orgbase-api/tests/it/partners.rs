//! Partners: partner keys reach the partner and its children, nothing else; plans.
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::App;

crate::api_tests!(
    a_partner_key_reaches_its_partner_and_children_only,
    partner_keys_are_made_for_partner_organizations_only,
    an_organization_key_with_partner_scope_acts_as_the_partner,
    plans_are_managed_by_the_platform,
    a_deleted_partners_key_acts_for_nobody,
    the_compatible_surfaces_answer_every_error_in_their_own_shape,
    a_plan_change_takes_up_its_offer_on_every_surface,
    entitlements_are_the_plans_and_the_organizations_own_on_every_surface,
    the_same_settings_store_the_same_organization_through_native_and_v2,
    a_suspension_stops_its_own_callers_and_not_the_partner,
);

/// SPEC's `suspended` on the partner settings API: a suspended partner's key changes nothing
/// (403, `success: false`), its children included, and may still read; a suspended child is
/// still its (active) partner's to change.
async fn a_suspension_stops_its_own_callers_and_not_the_partner(app: App) {
    let (pid, pk) = partner(&app, "Suspended Reseller").await;
    let kid = child(&app, &pk, "Customer").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v2 = |target: &str| {
        format!("/api/v2/updateOrganization?token={pk}&targetOrganizationId={target}")
    };
    let suspend = |id: String| {
        let app = &app;
        async move {
            let a = app
                .patch(
                    &format!("/api/organizations/{id}"),
                    json!({"status": "suspended", "statusReason": "fraud review"}),
                )
                .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        }
    };
    let lift = |id: String| {
        let app = &app;
        async move {
            let a = app
                .patch(
                    &format!("/api/organizations/{id}"),
                    json!({"status": "active", "statusReason": null}),
                )
                .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        }
    };
    let rename = |name: &'static str| {
        let (app, url) = (&app, v2(&kid));
        async move {
            app.as_(None, Method::POST, &url, Some(json!({"orgName": name})))
                .await
        }
    };
    // A suspended child: its partner still changes it.
    suspend(kid.clone()).await;
    let a = rename("Customer 2").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["updatedSettings"], json!(["orgName"]), "{}", a.text);
    lift(kid.clone()).await;
    // A suspended partner: its key changes nothing, on any surface, and still reads.
    suspend(pid.clone()).await;
    let a = rename("Customer 3").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert_eq!(a.body["success"], false, "{}", a.text);
    assert!(a.text.contains("suspended"), "{}", a.text);
    let a = app
        .as_(
            Some(&pk),
            Method::PATCH,
            &format!("/api/organizations/{kid}"),
            Some(json!({"name": "Customer 4"})),
        )
        .await;
    a.assert_problem(403, "organization_suspended");
    let a = app
        .as_(
            Some(&pk),
            Method::POST,
            "/api/organizations",
            Some(json!({"name": "Another", "countryCode": "US"})),
        )
        .await;
    a.assert_problem(403, "organization_suspended");
    let a = app
        .as_(
            Some(&pk),
            Method::GET,
            &format!("/api/organizations/{kid}"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["name"], "Customer 2");
    // Lifted by the platform, the partner acts again.
    lift(pid.clone()).await;
    let a = rename("Customer 5").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

/// SPEC: an organization's entitlements are its plan's plus its own grants. The native view and
/// the properties API show the same list; the native view also shows the own grants, which are
/// what `PATCH` `entitlements` sets.
async fn entitlements_are_the_plans_and_the_organizations_own_on_every_surface(app: App) {
    let p = app
        .post(
            "/api/admin/plans",
            json!({"id": "voice", "name": "Voice", "price": 0, "public": true,
                   "entitlements": ["calls", "sms"]}),
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
    let o = app
        .org(json!({"name": "Granted", "countryCode": "US", "entitlements": ["sms", "seats"]}))
        .await;
    let id = o["id"].as_str().unwrap();
    let path = format!("/api/organizations/{id}");
    // On the default plan (no entitlements): its own grants only.
    assert_eq!(o["entitlements"], json!(["sms", "seats"]));
    assert_eq!(o["ownEntitlements"], json!(["sms", "seats"]));
    let moved = app.patch(&path, json!({"productPlanId": "voice"})).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(moved.body["entitlements"], json!(["calls", "sms", "seats"]));
    assert_eq!(moved.body["ownEntitlements"], json!(["sms", "seats"]));
    let got = app.get(&path).await.body;
    assert_eq!(got["entitlements"], json!(["calls", "sms", "seats"]));
    let listed = app.get("/api/organizations?limit=100").await.body;
    let row = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(row["entitlements"], json!(["calls", "sms", "seats"]));
    let props = app
        .http
        .patch(format!("{}/v1/orgs/{id}/properties", app.base))
        .header("authorization", &app.key)
        .json(&json!({"updates": {"org_display_name": "Granted"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(props.status(), StatusCode::OK);
    let props: Value = props.json().await.unwrap();
    assert_eq!(
        props["data"]["entitlements"],
        json!(["calls", "sms", "seats"]),
        "{props}"
    );
}

/// The same plan changes through the native PATCH and through the partner settings API store the
/// same plan and offer: taking up the offered plan clears the offer; an offer of another plan
/// stays; an offer set in the same change wins.
async fn a_plan_change_takes_up_its_offer_on_every_surface(app: App) {
    for id in ["pro", "team"] {
        let p = app
            .post(
                "/api/admin/plans",
                json!({"id": id, "name": id, "price": 0, "public": true}),
            )
            .await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
    }
    // (offer before, the change, plan after, offer after)
    let cases = [
        (Some("pro"), json!({"productPlanId": "pro"}), "pro", None),
        (
            Some("team"),
            json!({"productPlanId": "pro"}),
            "pro",
            Some("team"),
        ),
        (None, json!({"productPlanId": "pro"}), "pro", None),
        (
            Some("pro"),
            json!({"productPlanId": "pro", "offeredProductPlanId": "team"}),
            "pro",
            Some("team"),
        ),
    ];
    for (i, (offer, change, plan, offer_after)) in cases.into_iter().enumerate() {
        let mut stored = Vec::new();
        for surface in ["native", "v2"] {
            let o = app
                .org(json!({"name": format!("Offer {i} {surface}"), "countryCode": "US"}))
                .await;
            let id = o["id"].as_str().unwrap();
            let path = format!("/api/organizations/{id}");
            let a = app
                .patch(&path, json!({"offeredProductPlanId": offer}))
                .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
            let a = match surface {
                "native" => app.patch(&path, change.clone()).await,
                _ => {
                    app.post(
                        &format!(
                            "/api/v2/updateOrganization?token={}&targetOrganizationId={id}",
                            app.key
                        ),
                        change.clone(),
                    )
                    .await
                }
            };
            assert_eq!(a.status, StatusCode::OK, "case {i} {surface}: {}", a.text);
            let after = app.get(&path).await.body;
            assert_eq!(after["productPlanId"], plan, "case {i} {surface}");
            assert_eq!(
                after["offeredProductPlanId"],
                json!(offer_after),
                "case {i} {surface}"
            );
            stored.push((
                after["productPlanId"].clone(),
                after["offeredProductPlanId"].clone(),
            ));
        }
        assert_eq!(stored[0], stored[1], "case {i}: native and v2 differ");
    }
}

/// Errors that come from outside a surface's own rules (here a body over the size limit) are
/// answered in the surface's shape too, not as a problem document; nothing changes.
async fn the_compatible_surfaces_answer_every_error_in_their_own_shape(app: App) {
    let (_, pk) = partner(&app, "Shape Partner").await;
    let c = child(&app, &pk, "Shape Child").await;
    let id = c["id"].as_str().unwrap();
    let before = app.get(&format!("/api/organizations/{id}")).await.body;
    let big = format!(r#"{{"orgName": "{}"}}"#, "x".repeat(2 * 1024 * 1024));

    let r = app
        .http
        .post(format!(
            "{}/api/v2/updateOrganization?token={pk}&targetOrganizationId={id}",
            app.base
        ))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    // The unread rest of the body ends the connection, and the answer says so.
    assert_eq!(r.headers()["connection"], "close");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");

    // Every 400 has the documented settings answer: the lists, none updated, none tried.
    for (query, body) in [
        (format!("targetOrganizationId={id}"), "[null, null]"),
        (format!("targetOrganizationId={id}"), "{\"orgName\": "),
        (String::new(), "{\"orgName\": \"X\"}"),
    ] {
        let r = app
            .http
            .post(format!(
                "{}/api/v2/updateOrganization?token={pk}&{query}",
                app.base
            ))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query} {body}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["success"], false, "{answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
        assert_eq!(answer["updatedSettings"], serde_json::json!([]), "{answer}");
        assert_eq!(answer["failedSettings"], Value::Null, "{answer}");
    }

    let r = app
        .http
        .patch(format!("{}/v1/orgs/{id}/properties", app.base))
        .header("authorization", pk.as_str())
        .header("content-type", "application/json")
        .body(format!(r#"{{"updates": {big}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["error"], "PAYLOAD_TOO_LARGE", "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");

    assert_eq!(
        app.get(&format!("/api/organizations/{id}")).await.body,
        before
    );
}

async fn a_deleted_partners_key_acts_for_nobody(app: App) {
    let (p, pk) = partner(&app, "Gone Partner").await;
    let c = child(&app, &pk, "Orphan").await;
    let path = format!("/api/organizations/{}", c["id"].as_str().unwrap());
    assert_eq!(
        app.as_(Some(&pk), Method::GET, &path, None).await.status,
        StatusCode::OK
    );
    let d = app.delete(&format!("/api/organizations/{p}")).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    app.as_(Some(&pk), Method::GET, &path, None)
        .await
        .assert_problem(401, "invalid_credentials");
    // Restored, it acts again.
    app.post(&format!("/api/admin/organizations/{p}/restore"), json!({}))
        .await;
    assert_eq!(
        app.as_(Some(&pk), Method::GET, &path, None).await.status,
        StatusCode::OK
    );
}

/// A partner organization and a partner key for it (made by the platform).
pub async fn partner(app: &App, name: &str) -> (String, String) {
    let p = app
        .org(json!({"name": name, "countryCode": "US", "type": "partner"}))
        .await;
    let id = p["id"].as_str().unwrap().to_owned();
    let k = app
        .post(
            "/api/admin/api-keys",
            json!({"name": format!("{name} key"), "kind": "partner", "organizationId": id}),
        )
        .await;
    assert_eq!(k.status, StatusCode::CREATED, "{}", k.text);
    assert_eq!(k.body["kind"], "partner");
    (id, k.body["key"].as_str().unwrap().to_owned())
}

/// A child created by the partner itself.
pub async fn child(app: &App, partner_key: &str, name: &str) -> Value {
    let a = app
        .as_(
            Some(partner_key),
            Method::POST,
            "/api/organizations",
            Some(json!({"name": name, "countryCode": "US"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    a.body
}

async fn a_partner_key_reaches_its_partner_and_children_only(app: App) {
    let (p, pk) = partner(&app, "Reseller").await;
    let (q, qk) = partner(&app, "Rival").await;
    let c = child(&app, &pk, "Child").await;
    let c_id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(c["parentId"], p.as_str());
    let d = child(&app, &qk, "Other child").await;
    let d_id = d["id"].as_str().unwrap();
    let loose = app.org(json!({"name": "Loose", "countryCode": "US"})).await;
    let get = |key: &str, id: &str| {
        let (key, p) = (key.to_owned(), format!("/api/organizations/{id}"));
        let app = &app;
        async move { app.as_(Some(&key), Method::GET, &p, None).await.status }
    };
    assert_eq!(get(&pk, &p).await, StatusCode::OK);
    assert_eq!(get(&pk, &c_id).await, StatusCode::OK);
    assert_eq!(get(&pk, d_id).await, StatusCode::NOT_FOUND);
    assert_eq!(get(&pk, &q).await, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&pk, loose["id"].as_str().unwrap()).await,
        StatusCode::NOT_FOUND
    );
    // Its list: itself and its children.
    let list = app
        .as_(Some(&pk), Method::GET, "/api/organizations", None)
        .await;
    let mut ids: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![p.as_str(), c_id.as_str()];
    want.sort();
    assert_eq!(ids, want);
    // It may not create a child of another partner.
    app.as_(
        Some(&pk),
        Method::POST,
        "/api/organizations",
        Some(json!({"name": "Sneaky", "countryCode": "US", "parentId": q})),
    )
    .await
    .assert_problem(422, "validation_failed");
    // It switches a child off and on, but does not suspend it or move it.
    let path = format!("/api/organizations/{c_id}");
    let patch = |body: Value| {
        let (pk, path) = (pk.clone(), path.clone());
        let app = &app;
        async move { app.as_(Some(&pk), Method::PATCH, &path, Some(body)).await }
    };
    let a = patch(json!({"name": "Renamed child", "status": "inactive"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["status"], "inactive");
    patch(json!({"status": "suspended", "statusReason": "no"}))
        .await
        .assert_problem(403, "forbidden");
    patch(json!({"parentId": q}))
        .await
        .assert_problem(403, "forbidden");
    patch(json!({"rateLimit": 99}))
        .await
        .assert_problem(403, "forbidden");
    // Nor switch itself off.
    app.as_(
        Some(&pk),
        Method::PATCH,
        &format!("/api/organizations/{p}"),
        Some(json!({"status": "inactive"})),
    )
    .await
    .assert_problem(403, "forbidden");
    // Only the platform moves a child to another partner; then it is out of reach.
    let moved = app.patch(&path, json!({"parentId": q})).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(get(&pk, &c_id).await, StatusCode::NOT_FOUND);
    assert_eq!(get(&qk, &c_id).await, StatusCode::OK);
    // The platform-only admin routes stay closed to a partner.
    app.as_(Some(&pk), Method::GET, "/api/admin/api-keys", None)
        .await
        .assert_problem(403, "forbidden");
}

async fn partner_keys_are_made_for_partner_organizations_only(app: App) {
    let normal = app
        .org(json!({"name": "Normal", "countryCode": "US"}))
        .await;
    for (body, field) in [
        (json!({"name": "k", "kind": "partner"}), "organizationId"),
        (
            json!({"name": "k", "kind": "partner", "organizationId": normal["id"]}),
            "organizationId",
        ),
        (
            json!({"name": "k", "kind": "partner", "organizationId": uuid::Uuid::now_v7()}),
            "organizationId",
        ),
        (
            json!({"name": "k", "kind": "partner", "organizationId": "nope"}),
            "organizationId",
        ),
        (
            json!({"name": "k", "kind": "platform", "organizationId": normal["id"]}),
            "organizationId",
        ),
    ] {
        let a = app.post("/api/admin/api-keys", body.clone()).await;
        a.assert_problem(422, "validation_failed");
        assert_eq!(a.field_errors()[0].0, field, "{body}");
    }
}

async fn an_organization_key_with_partner_scope_acts_as_the_partner(app: App) {
    let (p, _) = partner(&app, "Scoped").await;
    let k = app
        .post(
            &format!("/api/organizations/{p}/api-keys"),
            json!({"name": "partner scope", "roles": [2], "scope": "partner"}),
        )
        .await;
    assert_eq!(k.status, StatusCode::CREATED, "{}", k.text);
    assert_eq!(k.body["kind"], "partner");
    let key = k.body["key"].as_str().unwrap().to_owned();
    let c = child(&app, &key, "Scoped child").await;
    assert_eq!(c["parentId"], p.as_str());
    // On a normal organization, the scope does not exist.
    let n = app.org(json!({"name": "N", "countryCode": "US"})).await;
    app.post(
        &format!("/api/organizations/{}/api-keys", n["id"].as_str().unwrap()),
        json!({"name": "x", "roles": [2], "scope": "partner"}),
    )
    .await
    .assert_problem(422, "validation_failed");
}

async fn plans_are_managed_by_the_platform(app: App) {
    let public = app.as_(None, Method::GET, "/api/plans", None).await;
    assert_eq!(public.status, StatusCode::OK);
    assert_eq!(public.body["data"][0]["id"], "starter");
    for (body, field) in [
        (json!({"name": "X", "price": 1}), "id"),
        (json!({"id": "bad id", "name": "X", "price": 1}), "id"),
        (json!({"id": "x", "price": 1}), "name"),
        (json!({"id": "x", "name": "X"}), "price"),
        (json!({"id": "x", "name": "X", "price": -1}), "price"),
        (
            json!({"id": "x", "name": "X", "price": 1, "currency": "EURO"}),
            "currency",
        ),
        (
            json!({"id": "x", "name": "X", "price": 1, "interval": "week"}),
            "interval",
        ),
        (
            json!({"id": "x", "name": "X", "price": 1, "provider": "stripe"}),
            "providerPriceId",
        ),
        (
            json!({"id": "x", "name": "X", "price": 1, "provider": "paypal", "providerPriceId": "p"}),
            "provider",
        ),
        (
            json!({"id": "x", "name": "X", "price": 1, "tier": 3}),
            "tier",
        ),
    ] {
        let a = app.post("/api/admin/plans", body.clone()).await;
        a.assert_problem(422, "validation_failed");
        assert!(
            a.field_errors().iter().any(|(f, _)| f == field),
            "{body}: {}",
            a.text
        );
    }
    let pro = app
        .post(
            "/api/admin/plans",
            json!({"id": "pro", "name": "Pro", "price": 4900, "currency": "eur", "interval": "year",
                   "entitlements": ["sms"], "rateLimit": 20, "public": false,
                   "provider": "stripe", "providerPriceId": "price_123"}),
        )
        .await;
    assert_eq!(pro.status, StatusCode::CREATED, "{}", pro.text);
    assert_eq!(pro.body["currency"], "EUR");
    assert_eq!(pro.body["provider"], "stripe");
    app.post(
        "/api/admin/plans",
        json!({"id": "pro", "name": "Again", "price": 1}),
    )
    .await
    .assert_problem(409, "plan_exists");
    // Private: not in the public list.
    let public = app.as_(None, Method::GET, "/api/plans", None).await;
    assert_eq!(public.body["data"].as_array().unwrap().len(), 1);
    let all = app.get("/api/admin/plans").await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 2);
    let p = app
        .patch("/api/admin/plans/pro", json!({"public": true, "id": "x"}))
        .await;
    p.assert_problem(422, "validation_failed");
    let p = app
        .patch("/api/admin/plans/pro", json!({"public": true}))
        .await;
    assert_eq!(p.body["public"], true);
    // In use (offered to an organization): not deleted.
    let o = app
        .org(json!({"name": "Offered", "countryCode": "US"}))
        .await;
    let a = app
        .post(
            &format!(
                "/api/v2/updateOrganization?token={}&targetOrganizationId={}",
                app.key,
                o["id"].as_str().unwrap()
            ),
            json!({"offeredProductPlanId": "pro"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    app.delete("/api/admin/plans/pro")
        .await
        .assert_problem(409, "plan_in_use");
    app.delete("/api/admin/plans/starter")
        .await
        .assert_problem(409, "default_plan");
    let a = app
        .post(
            &format!(
                "/api/v2/updateOrganization?token={}&targetOrganizationId={}",
                app.key,
                o["id"].as_str().unwrap()
            ),
            json!({"offeredProductPlanId": null}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let d = app.delete("/api/admin/plans/pro").await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    app.get("/api/admin/plans/pro")
        .await
        .assert_problem(404, "not_found");
    // In use as an organization's current plan: not deleted either, until it moves off it.
    let a = app
        .post(
            "/api/admin/plans",
            json!({"id": "team", "name": "Team", "price": 0}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let org_path = format!("/api/organizations/{}", o["id"].as_str().unwrap());
    let a = app.patch(&org_path, json!({"productPlanId": "team"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    app.delete("/api/admin/plans/team")
        .await
        .assert_problem(409, "plan_in_use");
    assert_eq!(
        app.get("/api/admin/plans/team").await.status,
        StatusCode::OK
    );
    let a = app
        .patch(&org_path, json!({"productPlanId": "starter"}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let d = app.delete("/api/admin/plans/team").await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
}

/// One table of changes, made by a partner on a child through the native PATCH and through the
/// partner settings API: both surfaces pass and refuse the same ones, and store the same
/// organization (the rules have one home, the organization service).
async fn the_same_settings_store_the_same_organization_through_native_and_v2(app: App) {
    for id in ["pro", "team"] {
        let p = app
            .post(
                "/api/admin/plans",
                json!({"id": id, "name": id, "price": 0, "public": true}),
            )
            .await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
    }
    let (_, pk) = partner(&app, "Table Partner").await;
    // (setup by the platform, native body, v2 body, passes)
    let cases = [
        (
            json!({}),
            json!({"name": "Renamed"}),
            json!({"orgName": "Renamed"}),
            true,
        ),
        (
            json!({}),
            json!({"status": "inactive"}),
            json!({"active": false}),
            true,
        ),
        (
            json!({"status": "inactive"}),
            json!({"status": "active"}),
            json!({"active": true}),
            true,
        ),
        (
            json!({}),
            json!({"sms": {"brandId": "B1", "campaignId": "C1", "enabled": true}}),
            json!({"smsBrandId": "B1", "smsCampaignId": "C1", "smsEnabled": true}),
            true,
        ),
        (
            json!({"sms": {"brandId": "B1", "campaignId": "C1"}}),
            json!({"sms": {"enabled": true}}),
            json!({"smsEnabled": true}),
            true,
        ),
        (
            json!({"sms": {"brandId": "B1", "campaignId": "C1", "enabled": true}}),
            json!({"sms": {"enabled": false, "brandId": null}}),
            json!({"smsEnabled": false, "smsBrandId": null}),
            true,
        ),
        (
            json!({"externalBillingId": "old"}),
            json!({"externalAccountId": "AC1", "externalBillingId": null}),
            json!({"externalAccountId": "AC1", "externalBillingId": null}),
            true,
        ),
        (
            json!({"offeredProductPlanId": "pro"}),
            json!({"productPlanId": "pro"}),
            json!({"productPlanId": "pro"}),
            true,
        ),
        (
            json!({}),
            json!({"offeredProductPlanId": "team"}),
            json!({"offeredProductPlanId": "team"}),
            true,
        ),
        // Refused on both, and nothing changes.
        (
            json!({}),
            json!({"sms": {"enabled": true}}),
            json!({"smsEnabled": true}),
            false,
        ),
        (
            json!({"sms": {"brandId": "B1", "campaignId": "C1", "enabled": true}}),
            json!({"sms": {"campaignId": null}}),
            json!({"smsCampaignId": null}),
            false,
        ),
        (
            json!({}),
            json!({"productPlanId": "nope"}),
            json!({"productPlanId": "nope"}),
            false,
        ),
        (
            json!({}),
            json!({"offeredProductPlanId": "nope"}),
            json!({"offeredProductPlanId": "nope"}),
            false,
        ),
        (
            json!({"status": "suspended", "statusReason": "fraud"}),
            json!({"status": "active"}),
            json!({"active": true}),
            false,
        ),
        (
            json!({}),
            json!({"name": ""}),
            json!({"orgName": ""}),
            false,
        ),
    ];
    let shown = [
        "name",
        "status",
        "statusReason",
        "sms",
        "externalAccountId",
        "externalBillingId",
        "productPlanId",
        "offeredProductPlanId",
        "premium",
    ];
    for (i, (setup, native, v2, passes)) in cases.into_iter().enumerate() {
        let mut stored = Vec::new();
        for surface in ["native", "v2"] {
            let o = child(&app, &pk, &format!("Table {i} {surface}")).await;
            let id = o["id"].as_str().unwrap();
            let path = format!("/api/organizations/{id}");
            let a = app.patch(&path, setup.clone()).await;
            assert_eq!(a.status, StatusCode::OK, "case {i} setup: {}", a.text);
            let before = app.get(&path).await.body;
            let a = match surface {
                "native" => {
                    app.as_(Some(&pk), Method::PATCH, &path, Some(native.clone()))
                        .await
                }
                _ => {
                    app.as_(
                        None,
                        Method::POST,
                        &format!("/api/v2/updateOrganization?token={pk}&targetOrganizationId={id}"),
                        Some(v2.clone()),
                    )
                    .await
                }
            };
            assert_eq!(
                a.status.is_success(),
                passes,
                "case {i} {surface}: {} {}",
                a.status,
                a.text
            );
            let after = app.get(&path).await.body;
            if !passes {
                assert_eq!(after["version"], before["version"], "case {i} {surface}");
            }
            let view: Vec<Value> = shown.iter().map(|k| after[*k].clone()).collect();
            stored.push(view);
        }
        // The names differ by surface unless the case renames; the rest must not.
        if i != 0 {
            stored[0][0] = Value::Null;
            stored[1][0] = Value::Null;
        }
        assert_eq!(
            stored[0], stored[1],
            "case {i}: native and v2 stored different organizations"
        );
    }
}
