use crate::App;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn create_answers_201_with_location_etag_and_every_default(app: App) {
    let a = app
        .post(
            "/api/organizations",
            json!({"name": "My Organization", "countryCode": "us"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let o = &a.body;
    let id = o["id"].as_str().unwrap();
    assert_eq!(
        a.header("location"),
        Some(format!("/api/organizations/{id}").as_str())
    );
    assert_eq!(a.header("etag"), Some("\"1\""));
    assert_eq!(o["name"], "My Organization");
    assert_eq!(o["slug"], "my-organization");
    assert_eq!(o["countryCode"], "US");
    assert_eq!(o["avatarUrl"], Value::Null);
    assert_eq!(o["status"], "active");
    assert_eq!(o["statusReason"], Value::Null);
    assert_eq!(o["type"], "normal");
    assert_eq!(o["parentId"], Value::Null);
    assert_eq!(o["productPlanId"], "starter");
    assert_eq!(o["offeredProductPlanId"], Value::Null);
    assert_eq!(
        o["sms"],
        json!({"enabled": false, "brandId": null, "campaignId": null})
    );
    assert_eq!(o["premium"], false);
    assert_eq!(o["kycLevel"], 0);
    assert_eq!(o["placementGroup"], "shared");
    assert_eq!(o["billingOverdue"], false);
    assert_eq!(o["rateLimit"], 5);
    assert_eq!(o["entitlements"], json!([]));
    assert_eq!(
        o["preferences"],
        json!({"usePlatformUrl": false, "recordingLifespanDays": null})
    );
    assert_eq!(o["metadata"], json!({}));
    assert_eq!(o["version"], 1);
    assert_eq!(o["deletedAt"], Value::Null);
    let created = o["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created).is_ok());
    // What was answered is what is stored.
    let got = app.get(&format!("/api/organizations/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(&got.body, o);
    assert_eq!(got.header("etag"), Some("\"1\""));
}

async fn create_takes_every_writable_field(app: App) {
    let partner = app
        .org(json!({"name": "Partner", "countryCode": "DE", "type": "partner"}))
        .await;
    let body = json!({
        "name": "  Full Co  ",
        "countryCode": "GB",
        "slug": "full-co",
        "avatarUrl": "https://example.com/a.png",
        "status": "inactive",
        "statusReason": "paused by partner",
        "parentId": partner["id"],
        "sms": {"enabled": true, "brandId": "B1", "campaignId": "C1"},
        "externalAccountId": "AC_1",
        "externalBillingId": "BILL_1",
        "kycLevel": 3,
        "placementGroup": "eu-dedicated",
        "rateLimit": 50,
        "entitlements": ["voice", "sms", "voice"],
        "preferences": {"usePlatformUrl": true, "recordingLifespanDays": 30},
        "metadata": {"tier": "gold", "seats": 5, "vip": true}
    });
    let o = app.org(body).await;
    assert_eq!(o["name"], "Full Co");
    assert_eq!(o["slug"], "full-co");
    assert_eq!(o["avatarUrl"], "https://example.com/a.png");
    assert_eq!(o["status"], "inactive");
    assert_eq!(o["statusReason"], "paused by partner");
    assert_eq!(o["parentId"], partner["id"]);
    assert_eq!(
        o["sms"],
        json!({"enabled": true, "brandId": "B1", "campaignId": "C1"})
    );
    assert_eq!(o["externalAccountId"], "AC_1");
    assert_eq!(o["externalBillingId"], "BILL_1");
    assert_eq!(o["kycLevel"], 3);
    assert_eq!(o["placementGroup"], "eu-dedicated");
    assert_eq!(o["rateLimit"], 50);
    assert_eq!(o["entitlements"], json!(["voice", "sms"]));
    assert_eq!(
        o["preferences"],
        json!({"usePlatformUrl": true, "recordingLifespanDays": 30})
    );
    assert_eq!(
        o["metadata"],
        json!({"tier": "gold", "seats": 5, "vip": true})
    );
}

async fn create_names_every_failing_field_and_stores_nothing(app: App) {
    let a = app
        .post(
            "/api/organizations",
            json!({
                "name": "",
                "countryCode": "XX",
                "slug": "Bad Slug",
                "avatarUrl": "http://insecure.example.com/a.png",
                "status": "deleted",
                "type": "reseller",
                "parentId": "not-a-uuid",
                "kycLevel": 4,
                "rateLimit": 0,
                "placementGroup": "",
                "entitlements": "voice",
                "preferences": {"recordingLifespanDays": 0, "colour": "red"},
                "sms": {"enabled": "yes"},
                "metadata": {"bad key": "x", "nested": {"a": 1}},
                "statusReason": "x".repeat(501),
                "externalAccountId": 12,
            }),
        )
        .await;
    a.assert_problem(422, "validation_failed");
    let fields: Vec<String> = a.field_errors().into_iter().map(|(f, _)| f).collect();
    for f in [
        "name",
        "countryCode",
        "slug",
        "avatarUrl",
        "status",
        "type",
        "parentId",
        "kycLevel",
        "rateLimit",
        "placementGroup",
        "entitlements",
        "preferences.recordingLifespanDays",
        "preferences.colour",
        "sms.enabled",
        "metadata.bad key",
        "metadata.nested",
        "statusReason",
        "externalAccountId",
    ] {
        assert!(
            fields.contains(&f.to_owned()),
            "{f} missing from {fields:?}"
        );
    }
    let list = app.get("/api/organizations").await;
    assert_eq!(list.body["data"], json!([]));
}

async fn create_requires_name_and_country_code(app: App) {
    let a = app.post("/api/organizations", json!({})).await;
    a.assert_problem(422, "validation_failed");
    assert_eq!(
        a.field_errors(),
        [
            ("countryCode".into(), "required".into()),
            ("name".into(), "required".into())
        ]
    );
    let a = app
        .post(
            "/api/organizations",
            json!({"name": null, "countryCode": 1}),
        )
        .await;
    assert_eq!(
        a.field_errors(),
        [
            ("countryCode".into(), "invalid_type".into()),
            ("name".into(), "required".into())
        ]
    );
}

async fn server_owned_fields_cannot_be_written(app: App) {
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let id = o["id"].as_str().unwrap();
    for (field, value) in [
        ("id", json!("00000000-0000-0000-0000-000000000000")),
        ("owner", json!("00000000-0000-0000-0000-000000000000")),
        ("version", json!(99)),
        ("createdAt", json!("2020-01-01T00:00:00Z")),
        ("updatedAt", json!("2020-01-01T00:00:00Z")),
        ("deletedAt", json!(null)),
        ("billingOverdue", json!(true)),
        ("premium", json!(true)),
        (
            "subscription",
            json!({"provider": "stripe", "id": "sub_1", "status": "active"}),
        ),
    ] {
        let body = json!({ field: value, "name": "Changed" });
        let a = app
            .patch(&format!("/api/organizations/{id}"), body.clone())
            .await;
        a.assert_problem(422, "validation_failed");
        assert_eq!(
            a.field_errors(),
            [(field.to_owned(), "unknown_field".to_owned())],
            "{field}"
        );
        let mut create = body;
        create["countryCode"] = json!("US");
        let a = app.post("/api/organizations", create).await;
        assert_eq!(
            a.field_errors(),
            [(field.to_owned(), "unknown_field".to_owned())],
            "{field}"
        );
    }
    let after = app.get(&format!("/api/organizations/{id}")).await;
    assert_eq!(after.body, o, "nothing changed");
}

async fn slugs_are_unique_and_made_from_names(app: App) {
    let a = app
        .org(json!({"name": "Same Name", "countryCode": "US"}))
        .await;
    let b = app
        .org(json!({"name": "Same Name", "countryCode": "US"}))
        .await;
    assert_eq!(a["slug"], "same-name");
    let b_slug = b["slug"].as_str().unwrap();
    assert!(
        b_slug.starts_with("same-name-") && b_slug.len() <= 48,
        "{b_slug}"
    );
    let c = app
        .post(
            "/api/organizations",
            json!({"name": "C", "countryCode": "US", "slug": "same-name"}),
        )
        .await;
    c.assert_problem(409, "slug_taken");
    let short = app.org(json!({"name": "X", "countryCode": "US"})).await;
    let s = short["slug"].as_str().unwrap();
    assert!(s.len() >= 3 && s.starts_with("x-"), "{s}");
    // Renaming onto a taken slug is a conflict that changes nothing.
    let id = b["id"].as_str().unwrap();
    let p = app
        .patch(
            &format!("/api/organizations/{id}"),
            json!({"slug": "same-name", "name": "New"}),
        )
        .await;
    p.assert_problem(409, "slug_taken");
    assert_eq!(app.get(&format!("/api/organizations/{id}")).await.body, b);
}

async fn get_answers_404_for_unknown_and_malformed_ids(app: App) {
    let a = app
        .get("/api/organizations/0190a3c1-0000-7000-8000-000000000000")
        .await;
    a.assert_problem(404, "not_found");
    let a = app.get("/api/organizations/not-a-uuid").await;
    a.assert_problem(404, "not_found");
}

async fn get_honours_if_none_match(app: App) {
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let path = format!("/api/organizations/{}", o["id"].as_str().unwrap());
    let a = app
        .call(
            Method::GET,
            &path,
            Some(&app.key),
            None,
            &[("if-none-match", "\"1\"")],
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert_eq!(a.header("etag"), Some("\"1\""));
    let a = app
        .call(
            Method::GET,
            &path,
            Some(&app.key),
            None,
            &[("if-none-match", "\"7\"")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

async fn patch_changes_only_what_is_given(app: App) {
    let o = app
        .org(json!({"name": "Acme", "countryCode": "US", "avatarUrl": "https://e.com/a.png", "metadata": {"a": 1, "b": "x"}, "preferences": {"recordingLifespanDays": 10}}))
        .await;
    let path = format!("/api/organizations/{}", o["id"].as_str().unwrap());
    let a = app
        .patch(
            &path,
            json!({"name": "Acme 2", "avatarUrl": null, "metadata": {"a": null, "c": false}, "preferences": {"usePlatformUrl": true}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.header("etag"), Some("\"2\""));
    let n = &a.body;
    assert_eq!(n["name"], "Acme 2");
    assert_eq!(n["avatarUrl"], Value::Null);
    assert_eq!(n["metadata"], json!({"b": "x", "c": false}));
    assert_eq!(
        n["preferences"],
        json!({"usePlatformUrl": true, "recordingLifespanDays": 10})
    );
    assert_eq!(n["slug"], o["slug"], "the slug stays when the name changes");
    assert_eq!(n["createdAt"], o["createdAt"]);
    assert_ne!(n["updatedAt"], o["updatedAt"]);
    assert_eq!(n["version"], 2);
    // The same change again is a no-op: the version stays.
    let again = app.patch(&path, json!({"name": "Acme 2"})).await;
    assert_eq!(again.body["version"], 2);
    assert_eq!(app.get(&path).await.body, a.body);
}

async fn patch_with_an_invalid_field_changes_nothing(app: App) {
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let path = format!("/api/organizations/{}", o["id"].as_str().unwrap());
    let a = app
        .patch(&path, json!({"name": "Valid New Name", "rateLimit": -1}))
        .await;
    a.assert_problem(422, "validation_failed");
    assert_eq!(
        a.field_errors(),
        [("rateLimit".into(), "out_of_range".into())]
    );
    assert_eq!(app.get(&path).await.body, o);
}

async fn if_match_guards_writes(app: App) {
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let path = format!("/api/organizations/{}", o["id"].as_str().unwrap());
    let body = json!({"name": "Changed"});
    let stale = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.key),
            Some(&body),
            &[("if-match", "\"5\"")],
        )
        .await;
    stale.assert_problem(412, "precondition_failed");
    assert_eq!(app.get(&path).await.body, o);
    let ok = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.key),
            Some(&body),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let star = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.key),
            Some(&json!({"name": "Again"})),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(star.status, StatusCode::OK);
    let del = app
        .call(
            Method::DELETE,
            &path,
            Some(&app.key),
            None,
            &[("if-match", "\"1\"")],
        )
        .await;
    del.assert_problem(412, "precondition_failed");
    assert_eq!(app.get(&path).await.body["status"], "active");
}

async fn status_rules(app: App) {
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let path = format!("/api/organizations/{}", o["id"].as_str().unwrap());
    let a = app.patch(&path, json!({"status": "suspended"})).await;
    assert_eq!(
        a.field_errors(),
        [("statusReason".into(), "required".into())]
    );
    let a = app
        .patch(
            &path,
            json!({"status": "suspended", "statusReason": "Violation of terms"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["status"], "suspended");
    assert_eq!(a.body["statusReason"], "Violation of terms");
    let a = app.patch(&path, json!({"status": "deleted"})).await;
    assert_eq!(
        a.field_errors(),
        [("status".into(), "invalid_value".into())]
    );
    let a = app.patch(&path, json!({"status": "active"})).await;
    assert_eq!(a.body["status"], "active");
    assert_eq!(a.body["statusReason"], Value::Null);
}

async fn sms_needs_brand_and_campaign(app: App) {
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let path = format!("/api/organizations/{}", o["id"].as_str().unwrap());
    let a = app
        .patch(&path, json!({"sms": {"enabled": true, "brandId": "B"}}))
        .await;
    assert_eq!(
        a.field_errors(),
        [("sms.enabled".into(), "sms_setup_incomplete".into())]
    );
    let a = app
        .patch(&path, json!({"sms": {"brandId": "B", "campaignId": "C"}}))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = app.patch(&path, json!({"sms": {"enabled": true}})).await;
    assert_eq!(
        a.body["sms"],
        json!({"enabled": true, "brandId": "B", "campaignId": "C"})
    );
}

async fn partner_hierarchy_rules(app: App) {
    let partner = app
        .org(json!({"name": "Partner", "countryCode": "US", "type": "partner"}))
        .await;
    let normal = app
        .org(json!({"name": "Normal", "countryCode": "US"}))
        .await;
    let a = app
        .post(
            "/api/organizations",
            json!({"name": "C", "countryCode": "US", "parentId": normal["id"]}),
        )
        .await;
    assert_eq!(
        a.field_errors(),
        [("parentId".into(), "invalid_parent".into())]
    );
    let a = app
        .post("/api/organizations", json!({"name": "C", "countryCode": "US", "parentId": "0190a3c1-0000-7000-8000-000000000000"}))
        .await;
    assert_eq!(
        a.field_errors(),
        [("parentId".into(), "invalid_parent".into())]
    );
    let child = app
        .org(json!({"name": "Child", "countryCode": "US", "parentId": partner["id"]}))
        .await;
    let ppath = format!("/api/organizations/{}", partner["id"].as_str().unwrap());
    let a = app.patch(&ppath, json!({"type": "normal"})).await;
    a.assert_problem(409, "has_children");
    let cpath = format!("/api/organizations/{}", child["id"].as_str().unwrap());
    // A partner has no parent: whether both come in the request or one is stored.
    let a = app.patch(&cpath, json!({"type": "partner"})).await;
    assert_eq!(a.field_errors(), [("type".into(), "partner_parent".into())]);
    let a = app
        .post(
            "/api/organizations",
            json!({"name": "P2", "countryCode": "US", "type": "partner", "parentId": partner["id"]}),
        )
        .await;
    assert_eq!(a.field_errors(), [("type".into(), "partner_parent".into())]);
    let a = app
        .patch(&cpath, json!({"type": "partner", "parentId": null}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["type"], "partner");
    let a = app
        .patch(&cpath, json!({"type": "normal", "parentId": partner["id"]}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = app.patch(&cpath, json!({"parentId": child["id"]})).await;
    assert!(
        a.field_errors()
            .contains(&("parentId".into(), "invalid_value".into())),
        "{}",
        a.text
    );
    let a = app.patch(&cpath, json!({"parentId": null})).await;
    assert_eq!(a.body["parentId"], Value::Null);
}

async fn delete_is_soft_and_restore_brings_it_back(app: App) {
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let id = o["id"].as_str().unwrap();
    let path = format!("/api/organizations/{id}");
    app.patch(
        &path,
        json!({"status": "suspended", "statusReason": "unpaid"}),
    )
    .await;
    let d = app.delete(&path).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert!(d.text.is_empty());
    // The platform still sees it, as deleted; lists leave it out unless asked.
    let g = app.get(&path).await;
    assert_eq!(g.body["status"], "deleted");
    assert!(g.body["deletedAt"].is_string());
    assert_eq!(app.get("/api/organizations").await.body["data"], json!([]));
    let with = app.get("/api/organizations?includeDeleted=true").await;
    assert_eq!(with.body["data"][0]["id"], id);
    let only = app.get("/api/organizations?status=deleted").await;
    assert_eq!(only.body["data"][0]["id"], id);
    let p = app.patch(&path, json!({"name": "Zombie"})).await;
    p.assert_problem(409, "organization_deleted");
    // Deleting twice is fine.
    assert_eq!(app.delete(&path).await.status, StatusCode::NO_CONTENT);
    let r = app
        .post(&format!("/api/admin/organizations/{id}/restore"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["status"], "suspended",
        "the status it had comes back"
    );
    assert_eq!(r.body["deletedAt"], Value::Null);
    assert_eq!(
        app.get("/api/organizations").await.body["data"][0]["id"],
        id
    );
    let unknown = app
        .post(
            "/api/admin/organizations/0190a3c1-0000-7000-8000-000000000000/restore",
            json!({}),
        )
        .await;
    unknown.assert_problem(404, "not_found");
}

async fn deleted_organizations_are_purged_after_the_retention(app: App) {
    let o = app
        .org(json!({"name": "Short Lived", "countryCode": "US"}))
        .await;
    let path = format!("/api/organizations/{}", o["id"].as_str().unwrap());
    assert_eq!(app.delete(&path).await.status, StatusCode::NO_CONTENT);
    // Within the retention it stays, restorable.
    let n = orgbase_api::purge_deleted(&app.db.store, chrono::Duration::days(30))
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(app.get(&path).await.body["status"], "deleted");
    // Past it, it is gone for everyone, the platform included.
    let n = orgbase_api::purge_deleted(&app.db.store, chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!(n, 1);
    app.get(&path).await.assert_problem(404, "not_found");
    let restore = format!(
        "/api/admin/organizations/{}/restore",
        o["id"].as_str().unwrap()
    );
    app.post(&restore, json!({}))
        .await
        .assert_problem(404, "not_found");
}

async fn list_pages_with_a_cursor(app: App) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.org(json!({"name": format!("Org {i}"), "countryCode": "US"}))
                .await["id"]
                .clone(),
        );
    }
    ids.reverse();
    let p1 = app.get("/api/organizations?limit=2").await;
    assert_eq!(p1.status, StatusCode::OK);
    assert_eq!(
        p1.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].clone())
            .collect::<Vec<_>>(),
        ids[..2]
    );
    let c1 = p1.body["nextCursor"].as_str().unwrap().to_owned();
    let p2 = app
        .get(&format!("/api/organizations?limit=2&cursor={c1}"))
        .await;
    assert_eq!(
        p2.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].clone())
            .collect::<Vec<_>>(),
        ids[2..4]
    );
    let c2 = p2.body["nextCursor"].as_str().unwrap().to_owned();
    let p3 = app
        .get(&format!("/api/organizations?limit=2&cursor={c2}"))
        .await;
    assert_eq!(p3.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(p3.body["nextCursor"], Value::Null);
    let all = app.get("/api/organizations").await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 5);
    assert_eq!(all.body["nextCursor"], Value::Null);
}

async fn list_filters(app: App) {
    let partner = app
        .org(json!({"name": "Big Partner", "countryCode": "US", "type": "partner"}))
        .await;
    let child = app
        .org(json!({"name": "Child Co", "countryCode": "US", "parentId": partner["id"], "externalAccountId": "AC_9", "metadata": {"tier": "gold", "seats": 5}}))
        .await;
    let off = app
        .org(json!({"name": "Sleepy", "countryCode": "US", "status": "inactive"}))
        .await;
    let ids = |a: &crate::Answer| {
        let mut v: Vec<String> = a.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let one = |o: &Value| vec![o["id"].as_str().unwrap().to_owned()];
    assert_eq!(
        ids(&app.get("/api/organizations?type=partner").await),
        one(&partner)
    );
    assert_eq!(
        ids(&app
            .get(&format!(
                "/api/organizations?parentId={}",
                partner["id"].as_str().unwrap()
            ))
            .await),
        one(&child)
    );
    assert_eq!(
        ids(&app.get("/api/organizations?status=inactive").await),
        one(&off)
    );
    assert_eq!(
        ids(&app.get("/api/organizations?externalAccountId=AC_9").await),
        one(&child)
    );
    assert_eq!(
        ids(&app.get("/api/organizations?q=chIL").await),
        one(&child)
    );
    assert_eq!(
        ids(&app.get("/api/organizations?q=big-part").await),
        one(&partner)
    );
    assert_eq!(
        ids(&app.get("/api/organizations?metadata%5Btier%5D=gold").await),
        one(&child)
    );
    assert_eq!(
        ids(&app
            .get("/api/organizations?metadata[tier]=gold&metadata[seats]=5")
            .await),
        one(&child)
    );
    assert!(ids(&app.get("/api/organizations?metadata[tier]=silver").await).is_empty());
    assert_eq!(
        ids(&app
            .get("/api/organizations?type=normal&status=active")
            .await),
        one(&child)
    );
}

async fn list_rejects_bad_parameters(app: App) {
    for (query, field, code) in [
        ("limit=0", "limit", "out_of_range"),
        ("limit=101", "limit", "out_of_range"),
        ("limit=ten", "limit", "out_of_range"),
        ("cursor=!!", "cursor", "invalid_cursor"),
        ("status=gone", "status", "invalid_value"),
        ("type=big", "type", "invalid_value"),
        ("parentId=x", "parentId", "invalid_value"),
        ("q=ab", "q", "invalid_length"),
        ("includeDeleted=yes", "includeDeleted", "invalid_value"),
        ("colour=red", "colour", "unknown_parameter"),
        ("metadata[bad%20key]=1", "metadata[bad key]", "invalid_key"),
    ] {
        let a = app.get(&format!("/api/organizations?{query}")).await;
        a.assert_problem(422, "validation_failed");
        assert_eq!(
            a.field_errors(),
            [(field.to_owned(), code.to_owned())],
            "{query}"
        );
    }
    let a = app.get("/api/organizations?limit=0&colour=red").await;
    assert_eq!(a.field_errors().len(), 2, "every bad parameter at once");
}

async fn concurrent_patches_all_land(app: App) {
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let path = format!("/api/organizations/{}", o["id"].as_str().unwrap());
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            app.patch(&path, json!({"metadata": {format!("k{i}"): i}}))
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let after = app.get(&path).await;
    assert_eq!(
        after.body["metadata"].as_object().unwrap().len(),
        20,
        "no change was lost"
    );
    assert_eq!(after.body["version"], 21);
}

crate::api_tests!(
    create_answers_201_with_location_etag_and_every_default,
    create_takes_every_writable_field,
    create_names_every_failing_field_and_stores_nothing,
    create_requires_name_and_country_code,
    server_owned_fields_cannot_be_written,
    slugs_are_unique_and_made_from_names,
    get_answers_404_for_unknown_and_malformed_ids,
    get_honours_if_none_match,
    patch_changes_only_what_is_given,
    patch_with_an_invalid_field_changes_nothing,
    if_match_guards_writes,
    status_rules,
    sms_needs_brand_and_campaign,
    partner_hierarchy_rules,
    delete_is_soft_and_restore_brings_it_back,
    list_pages_with_a_cursor,
    list_filters,
    list_rejects_bad_parameters,
    concurrent_patches_all_land,
    deleted_organizations_are_purged_after_the_retention,
    field_limits_over_http,
    writes_on_unknown_or_malformed_ids_are_404,
    a_status_filter_never_returns_deleted_ones,
    etags_compare_as_rfc_9110_says,
    list_values_with_nul_are_refused,
);

/// Each field's limits, at and just past the edge.
async fn field_limits_over_http(app: App) {
    let o = app.org(json!({"name": "Edges", "countryCode": "US"})).await;
    let path = format!("/api/organizations/{}", o["id"].as_str().unwrap());
    let ok = [
        json!({"name": "x".repeat(100)}),
        json!({"slug": "abc"}),
        json!({"slug": "a".repeat(48)}),
        json!({"avatarUrl": format!("https://e.com/{}", "a".repeat(2048 - 14))}),
        json!({"preferences": {"recordingLifespanDays": 1}}),
        json!({"preferences": {"recordingLifespanDays": 1825}}),
        json!({"preferences": {"recordingLifespanDays": -1}}),
        json!({"kycLevel": 3}),
        json!({"rateLimit": 100000}),
        json!({"statusReason": "r".repeat(500)}),
        json!({"metadata": {"k": "é".repeat(500)}}),
        json!({"metadata": {"a".repeat(64): 1}}),
    ];
    for body in ok {
        let a = app.patch(&path, body.clone()).await;
        assert_eq!(a.status, StatusCode::OK, "{body} → {}", a.text);
    }
    let bad = [
        (json!({"name": "x".repeat(101)}), "name", "too_long"),
        (json!({"name": "a\u{0}b"}), "name", "invalid_characters"),
        (json!({"name": "tab\there"}), "name", "invalid_characters"),
        (json!({"slug": "ab"}), "slug", "invalid_length"),
        (json!({"slug": "a".repeat(49)}), "slug", "invalid_length"),
        (json!({"slug": "a_b"}), "slug", "invalid_format"),
        (
            json!({"avatarUrl": "javascript:alert(1)"}),
            "avatarUrl",
            "invalid_url",
        ),
        (
            json!({"avatarUrl": format!("https://e.com/{}", "a".repeat(2048))}),
            "avatarUrl",
            "too_long",
        ),
        (
            json!({"preferences": {"recordingLifespanDays": 0}}),
            "preferences.recordingLifespanDays",
            "out_of_range",
        ),
        (
            json!({"preferences": {"recordingLifespanDays": -2}}),
            "preferences.recordingLifespanDays",
            "out_of_range",
        ),
        (
            json!({"preferences": {"recordingLifespanDays": 1826}}),
            "preferences.recordingLifespanDays",
            "out_of_range",
        ),
        (json!({"kycLevel": -1}), "kycLevel", "out_of_range"),
        (json!({"rateLimit": 100001}), "rateLimit", "out_of_range"),
        (
            json!({"statusReason": "r".repeat(501)}),
            "statusReason",
            "too_long",
        ),
        (
            json!({"metadata": {"k": "x".repeat(501)}}),
            "metadata.k",
            "too_long",
        ),
        (
            json!({"metadata": {"k": "a\u{0}b"}}),
            "metadata.k",
            "invalid_characters",
        ),
        (
            json!({"metadata": {"a".repeat(65): 1}}),
            &*format!("metadata.{}", "a".repeat(65)),
            "invalid_key",
        ),
        (
            json!({"metadata": {"list": [1, 2]}}),
            "metadata.list",
            "invalid_value",
        ),
        (
            json!({"metadata": (0..51).map(|i| (format!("m{i}"), json!(i))).collect::<serde_json::Map<_, _>>()}),
            "metadata",
            "too_many_keys",
        ),
        (
            json!({"metadata": (0..20).map(|i| (format!("m{i}"), json!("x".repeat(450)))).collect::<serde_json::Map<_, _>>()}),
            "metadata",
            "too_large",
        ),
        (
            json!({"countryCode": "ZZ"}),
            "countryCode",
            "invalid_country_code",
        ),
        (
            json!({"entitlements": ["ok", "not ok"]}),
            "entitlements[1]",
            "invalid_format",
        ),
    ];
    let before = app.get(&path).await.body;
    for (body, field, code) in bad {
        let a = app.patch(&path, body.clone()).await;
        a.assert_problem(422, "validation_failed");
        assert_eq!(
            a.field_errors(),
            [(field.to_owned(), code.to_owned())],
            "{body}"
        );
    }
    // A merge that crosses the key limit fails too.
    let fifty: serde_json::Map<_, _> = (0..48).map(|i| (format!("n{i}"), json!(i))).collect();
    assert_eq!(
        app.patch(&path, json!({"metadata": fifty})).await.status,
        StatusCode::OK
    );
    let a = app
        .patch(&path, json!({"metadata": {"one": 1, "two": 2}}))
        .await;
    assert_eq!(
        a.field_errors(),
        [("metadata".into(), "too_many_keys".into())]
    );
    let after = app.get(&path).await.body;
    assert_eq!(
        after["version"].as_i64().unwrap(),
        before["version"].as_i64().unwrap() + 1
    );
}

async fn writes_on_unknown_or_malformed_ids_are_404(app: App) {
    let unknown = "0190a3c1-0000-7000-8000-000000000000";
    for id in [unknown, "not-a-uuid"] {
        let path = format!("/api/organizations/{id}");
        app.patch(&path, json!({"name": "X"}))
            .await
            .assert_problem(404, "not_found");
        // An invalid body on an organization out of reach is still a 404: nothing is learnt.
        app.patch(&path, json!({"name": ""}))
            .await
            .assert_problem(404, "not_found");
        app.delete(&path).await.assert_problem(404, "not_found");
        app.post(&format!("/api/admin/organizations/{id}/restore"), json!({}))
            .await
            .assert_problem(404, "not_found");
    }
}

async fn a_status_filter_never_returns_deleted_ones(app: App) {
    let o = app.org(json!({"name": "Gone", "countryCode": "US"})).await;
    let keep = app.org(json!({"name": "Kept", "countryCode": "US"})).await;
    app.delete(&format!("/api/organizations/{}", o["id"].as_str().unwrap()))
        .await;
    let a = app
        .get("/api/organizations?status=active&includeDeleted=true")
        .await;
    let ids: Vec<_> = a.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert_eq!(ids, [keep["id"].clone()]);
    // Restoring what is not deleted answers it as it is.
    let r = app
        .post(
            &format!(
                "/api/admin/organizations/{}/restore",
                keep["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], keep["version"]);
    // A DELETE whose If-Match matches goes through.
    let k = format!("/api/organizations/{}", keep["id"].as_str().unwrap());
    let d = app
        .call(
            Method::DELETE,
            &k,
            Some(&app.key),
            None,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
}

async fn etags_compare_as_rfc_9110_says(app: App) {
    let o = app.org(json!({"name": "Acme", "countryCode": "US"})).await;
    let path = format!("/api/organizations/{}", o["id"].as_str().unwrap());
    // If-Match is strong: a weak tag never matches.
    let a = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.key),
            Some(&json!({"name": "B"})),
            &[("if-match", "W/\"1\"")],
        )
        .await;
    a.assert_problem(412, "precondition_failed");
    let a = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.key),
            Some(&json!({"name": "B"})),
            &[("if-match", "\"0\", \"1\"")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    // If-None-Match is weak, and * matches anything that exists.
    let a = app
        .call(
            Method::GET,
            &path,
            Some(&app.key),
            None,
            &[("if-none-match", "W/\"2\"")],
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    let a = app
        .call(
            Method::GET,
            &path,
            Some(&app.key),
            None,
            &[("if-none-match", "*")],
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
}

async fn list_values_with_nul_are_refused(app: App) {
    for query in ["q=ab%00c", "externalAccountId=%00", "metadata[k]=%00"] {
        let a = app.get(&format!("/api/organizations?{query}")).await;
        a.assert_problem(422, "validation_failed");
        assert_eq!(a.field_errors()[0].1, "invalid_characters", "{query}");
    }
}
