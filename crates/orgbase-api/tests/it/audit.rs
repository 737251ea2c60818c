//! The audit log through the API: what each surface's change records (before and after, the
//! actor, the surface, the request), what a refused change records (nothing), the reads with
//! their filters, pages and reach, and the changes made without a request.
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::App;

crate::api_tests!(
    each_surface_records_its_changes_with_before_and_after,
    a_refused_or_invalid_change_records_nothing,
    the_log_filters_pages_and_stays_within_reach,
    purges_and_retention_are_recorded_and_applied,
    the_client_address_is_forwarded_only_by_a_trusted_proxy,
);

/// The organization's entries, oldest first.
async fn log(app: &App, org: &str) -> Vec<Value> {
    let a = app
        .get(&format!("/api/organizations/{org}/audit-log?limit=100"))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let mut v = a.body["data"].as_array().unwrap().clone();
    v.reverse();
    v
}

async fn each_surface_records_its_changes_with_before_and_after(app: App) {
    let org = app
        .org(json!({"name": "Audited", "countryCode": "US", "metadata": {"tier": "a"}}))
        .await;
    let id = org["id"].as_str().unwrap().to_owned();
    // Native.
    let a = app
        .patch(
            &format!("/api/organizations/{id}"),
            json!({"name": "Audited 2", "metadata": {"tier": "b"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let request_id = a.header("x-request-id").unwrap().to_owned();
    // The partner settings API, one setting applied and one failed: one entry, with what was
    // applied.
    let a = app
        .as_(
            None,
            Method::POST,
            &format!(
                "/api/v2/updateOrganization?token={}&targetOrganizationId={id}",
                app.key
            ),
            Some(json!({"orgName": "Audited 3", "productPlanId": "no-such-plan"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["updatedSettings"], json!(["orgName"]), "{}", a.text);
    // The properties API.
    let p = app
        .http
        .patch(format!("{}/v1/orgs/{id}/properties", app.base))
        .header("authorization", &app.key)
        .json(&json!({"updates": {"org_display_name": "Audited 4"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(p.status(), StatusCode::OK);

    let entries = log(&app, &id).await;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "organization.created",
            "organization.updated",
            "organization.updated",
            "organization.updated"
        ]
    );
    let [created, native, v2, props] = &entries[..] else {
        unreachable!()
    };
    assert_eq!(
        created["changes"]["name"],
        json!({"before": null, "after": "Audited"})
    );
    assert_eq!(created["target"], json!({"type": "organization", "id": id}));
    assert_eq!(created["organizationId"], id.as_str());
    assert_eq!(native["surface"], "native");
    assert_eq!(native["requestId"], request_id.as_str());
    assert_eq!(native["actor"]["type"], "platform_key");
    assert_eq!(native["actor"]["label"], "bootstrap");
    assert_eq!(
        native["changes"]["name"],
        json!({"before": "Audited", "after": "Audited 2"})
    );
    assert_eq!(
        native["changes"]["metadata"],
        json!({"before": {"tier": "a"}, "after": {"tier": "b"}})
    );
    // Only what changed (and never the version or the times).
    let named: Vec<&String> = native["changes"].as_object().unwrap().keys().collect();
    assert_eq!(named, ["metadata", "name"]);
    assert_eq!(v2["surface"], "partner_settings");
    assert_eq!(
        v2["changes"],
        json!({"name": {"before": "Audited 2", "after": "Audited 3"}})
    );
    assert_eq!(props["surface"], "properties");
    assert_eq!(
        props["changes"]["name"],
        json!({"before": "Audited 3", "after": "Audited 4"})
    );
    // No secret is ever in an entry: a key's creation shows its prefix, not its hash.
    let k = app
        .post(
            &format!("/api/organizations/{id}/api-keys"),
            json!({"name": "ci", "roles": [5]}),
        )
        .await;
    assert_eq!(k.status, StatusCode::CREATED, "{}", k.text);
    let secret = k.body["key"].as_str().unwrap().to_owned();
    let last = log(&app, &id).await.pop().unwrap();
    assert_eq!(last["action"], "api_key.created");
    let text = last.to_string();
    assert!(!text.contains(&secret) && !text.contains("hash"), "{text}");
    assert_eq!(last["changes"]["name"]["after"], "ci");
}

async fn a_refused_or_invalid_change_records_nothing(app: App) {
    let org = app.org(json!({"name": "Quiet", "countryCode": "US"})).await;
    let id = org["id"].as_str().unwrap().to_owned();
    let before = log(&app, &id).await.len();
    let path = format!("/api/organizations/{id}");
    // Invalid, refused by a precondition, refused by a rule, refused for lack of money, and a
    // v2 request all of whose settings failed.
    app.patch(&path, json!({"name": ""}))
        .await
        .assert_problem(422, "validation_failed");
    let a = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.key),
            Some(&json!({"name": "Stale"})),
            &[("if-match", "\"999\"")],
        )
        .await;
    assert_eq!(a.status, StatusCode::PRECONDITION_FAILED, "{}", a.text);
    app.patch(&path, json!({"parentId": id.clone()}))
        .await
        .assert_problem(422, "validation_failed");
    let a = app
        .post(
            &format!("/api/admin/organizations/{id}/charge"),
            json!({"amount": 5, "service": "voice"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYMENT_REQUIRED, "{}", a.text);
    let a = app
        .as_(
            None,
            Method::POST,
            &format!(
                "/api/v2/updateOrganization?token={}&targetOrganizationId={id}",
                app.key
            ),
            Some(json!({"productPlanId": "no-such-plan"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    // A change to nothing is no change.
    let a = app.patch(&path, json!({"name": "Quiet"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(log(&app, &id).await.len(), before);
}

async fn the_log_filters_pages_and_stays_within_reach(app: App) {
    let (partner, partner_key) = crate::partners::partner(&app, "Audit Partner").await;
    let child = crate::partners::child(&app, &partner_key, "Audit Child").await;
    let child = child["id"].as_str().unwrap().to_owned();
    for n in 0..3 {
        let a = app
            .as_(
                Some(&partner_key),
                Method::PATCH,
                &format!("/api/organizations/{child}"),
                Some(json!({"name": format!("Child {n}")})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }
    let list = |who: Option<String>, path: String| {
        let app = &app;
        async move { app.as_(who.as_deref(), Method::GET, &path, None).await }
    };
    let key = Some(app.key.clone());
    // Filters.
    let base = format!("/api/organizations/{child}/audit-log");
    let a = list(key.clone(), format!("{base}?action=organization.updated")).await;
    assert_eq!(a.body["data"].as_array().unwrap().len(), 3, "{}", a.text);
    let partner_key_id = a.body["data"][0]["actor"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(a.body["data"][0]["actor"]["type"], "partner_key");
    let a = list(key.clone(), format!("{base}?actorId={partner_key_id}")).await;
    assert_eq!(a.body["data"].as_array().unwrap().len(), 4, "{}", a.text);
    let a = list(
        key.clone(),
        format!("{base}?targetId={child}&since=2000-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(a.body["data"].as_array().unwrap().len(), 4, "{}", a.text);
    let a = list(key.clone(), format!("{base}?until=2000-01-01T00:00:00Z")).await;
    assert!(a.body["data"].as_array().unwrap().is_empty(), "{}", a.text);
    // Pages, newest first.
    let first = list(key.clone(), format!("{base}?limit=3")).await;
    let data = first.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["changes"]["name"]["after"], "Child 2");
    let cursor = first.body["nextCursor"].as_str().unwrap();
    let second = list(key.clone(), format!("{base}?limit=3&cursor={cursor}")).await;
    let data = second.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{}", second.text);
    assert_eq!(data[0]["action"], "organization.created");
    assert_eq!(second.body["nextCursor"], Value::Null);
    // Bad parameters, each named.
    let a = list(
        key.clone(),
        format!("{base}?limit=0&cursor=nope&since=yesterday&colour=red"),
    )
    .await;
    a.assert_problem(422, "validation_failed");
    let mut named: Vec<String> = a.field_errors().into_iter().map(|(f, _)| f).collect();
    named.sort();
    assert_eq!(named, ["colour", "cursor", "limit", "since"]);
    // Reach: the partner reads its children's entries from its own log; a person without
    // audit:read is refused; another organization's owner finds nothing; the admin log is the
    // platform's.
    let a = list(
        Some(partner_key.clone()),
        format!("/api/organizations/{partner}/audit-log?action=organization.updated"),
    )
    .await;
    assert_eq!(a.body["data"].as_array().unwrap().len(), 3, "{}", a.text);
    let (viewer, _) = app
        .person(
            &child,
            "viewer@audit.test",
            &[orgbase_domain::people::ROLE_VIEWER],
        )
        .await;
    list(Some(viewer.clone()), base.clone())
        .await
        .assert_problem(403, "forbidden");
    let (_, stranger) = app.owned_org("stranger@audit.test").await;
    list(Some(stranger), base.clone())
        .await
        .assert_problem(404, "not_found");
    list(None, base.clone())
        .await
        .assert_problem(401, "missing_credentials");
    list(Some(partner_key.clone()), "/api/admin/audit-log".into())
        .await
        .assert_problem(403, "forbidden");
    let all = list(
        key.clone(),
        "/api/admin/audit-log?action=api_key.created".into(),
    )
    .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let made = &all.body["data"][0];
    assert_eq!(made["organizationId"], partner.as_str());
    assert_eq!(made["changes"]["kind"]["after"], "partner");
    // Signing in is recorded platform-wide, with the person as actor.
    let a = list(key, "/api/admin/audit-log?action=session.created".into()).await;
    let signed_in = a.body["data"][0].clone();
    assert_eq!(signed_in["actor"]["type"], "user");
    assert_eq!(signed_in["actor"]["label"], "stranger@audit.test");
    assert_eq!(signed_in["organizationId"], Value::Null);
}

async fn purges_and_retention_are_recorded_and_applied(app: App) {
    let org = app
        .org(json!({"name": "Doomed", "countryCode": "US"}))
        .await;
    let id = org["id"].as_str().unwrap().to_owned();
    let a = app.delete(&format!("/api/organizations/{id}")).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let n = orgbase_api::purge_deleted(&app.db.store, chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!(n, 1);
    // The organization is gone; its story stays, ending with its purge by the system.
    let a = app
        .get(&format!("/api/admin/audit-log?targetId={id}"))
        .await;
    let actions: Vec<&str> = a.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "organization.purged",
            "organization.deleted",
            "organization.created"
        ]
    );
    let purged = &a.body["data"][0];
    assert_eq!(
        purged["actor"],
        json!({"type": "system", "id": "retention", "label": null})
    );
    assert_eq!(purged["surface"], "system");
    assert_eq!(purged["organizationId"], id.as_str());
    // Retention: entries older than it go, younger ones stay.
    let mut old = serde_json::from_value::<orgbase_domain::AuditEntry>(purged.clone()).unwrap();
    old.id = uuid::Uuid::now_v7();
    old.occurred_at = orgbase_domain::now() - chrono::Duration::days(400);
    app.db
        .store
        .append_audit_entries(&[old.clone()])
        .await
        .unwrap();
    let removed = orgbase_api::purge_audit_log(&app.db.store, chrono::Duration::days(365))
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let a = app
        .get(&format!("/api/admin/audit-log?targetId={id}"))
        .await;
    assert_eq!(a.body["data"].as_array().unwrap().len(), 3, "{}", a.text);
}

/// The `clientAddress` recorded for an organization made with `headers`.
async fn made_by(app: &App, headers: &[(&str, &str)]) -> Value {
    let a = app
        .call(
            Method::POST,
            "/api/organizations",
            Some(&app.key),
            Some(&json!({"name": "Forwarded", "countryCode": "US"})),
            headers,
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_owned();
    log(app, &id).await[0]["clientAddress"].clone()
}

/// `X-Forwarded-For` / `Forwarded` name the client only when the peer is a trusted proxy; the
/// audit log's `clientAddress` shows which address was taken.
async fn the_client_address_is_forwarded_only_by_a_trusted_proxy(app: App) {
    let spoofed: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.9")];
    // Nobody trusted (the default): the peer, whatever the headers say.
    assert_eq!(made_by(&app, spoofed).await, "127.0.0.1");
    // Loopback trusted: the right-most address that is not a trusted proxy.
    let behind = App::start_with(
        orgbase_store::testing::sqlite().await,
        orgbase_api::ApiConfig {
            trusted_proxies: orgbase_api::client_address::TrustedProxies::parse("127.0.0.0/8")
                .unwrap(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(made_by(&behind, spoofed).await, "203.0.113.9");
    let chain: &[(&str, &str)] = &[("x-forwarded-for", "198.51.100.1, 203.0.113.9, 127.0.0.2")];
    assert_eq!(made_by(&behind, chain).await, "203.0.113.9");
    let forwarded: &[(&str, &str)] = &[("forwarded", "for=\"[2001:db8::17]:4711\";proto=https")];
    assert_eq!(made_by(&behind, forwarded).await, "2001:db8::17");
    assert_eq!(made_by(&behind, &[]).await, "127.0.0.1");
}
