use crate::App;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn a_new_key_is_shown_once_and_works(app: App) {
    let a = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "billing sync", "kind": "platform"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let k = &a.body;
    let key = k["key"].as_str().unwrap();
    assert!(key.starts_with("obk_") && key.len() >= 47, "{key}");
    assert_eq!(k["name"], "billing sync");
    assert_eq!(k["kind"], "platform");
    assert_eq!(k["organizationId"], serde_json::Value::Null);
    assert_eq!(k["prefix"].as_str().unwrap(), &key[..12]);
    assert!(k["createdAt"].is_string() && k["id"].is_string());
    let mut fields: Vec<&str> = k.as_object().unwrap().keys().map(|s| s.as_str()).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "createdAt",
            "id",
            "key",
            "kind",
            "name",
            "organizationId",
            "prefix"
        ]
    );
    // The new key acts as a platform key.
    let me = app
        .call(Method::GET, "/api/admin/api-keys", Some(key), None, &[])
        .await;
    assert_eq!(me.status, StatusCode::OK);
    // Lists never carry a secret or a hash.
    assert!(!me.text.contains(key));
    for entry in me.body["data"].as_array().unwrap() {
        assert!(
            entry.get("key").is_none()
                && entry.get("hash").is_none()
                && entry.get("secretHash").is_none()
        );
    }
    assert_eq!(me.body["data"].as_array().unwrap().len(), 2);
}

async fn revoking_lists_and_guards_the_last_key(app: App) {
    let list = app.get("/api/admin/api-keys").await;
    let bootstrap_id = list.body["data"][0]["id"].as_str().unwrap().to_owned();
    let a = app
        .delete(&format!("/api/admin/api-keys/{bootstrap_id}"))
        .await;
    a.assert_problem(409, "last_platform_key");
    let other = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "second", "kind": "platform"}),
        )
        .await;
    let other_key = other.body["key"].as_str().unwrap().to_owned();
    let a = app
        .call(
            Method::DELETE,
            &format!("/api/admin/api-keys/{bootstrap_id}"),
            Some(&other_key),
            None,
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let active = app
        .call(
            Method::GET,
            "/api/admin/api-keys",
            Some(&other_key),
            None,
            &[],
        )
        .await;
    assert_eq!(active.body["data"].as_array().unwrap().len(), 1);
    let all = app
        .call(
            Method::GET,
            "/api/admin/api-keys?includeRevoked=true",
            Some(&other_key),
            None,
            &[],
        )
        .await;
    let revoked: Vec<_> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revokedAt"].is_string())
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["id"], bootstrap_id.as_str());
    let a = app
        .call(
            Method::DELETE,
            "/api/admin/api-keys/0190a3c1-0000-7000-8000-000000000000",
            Some(&other_key),
            None,
            &[],
        )
        .await;
    a.assert_problem(404, "not_found");
    let a = app
        .call(
            Method::DELETE,
            "/api/admin/api-keys/nope",
            Some(&other_key),
            None,
            &[],
        )
        .await;
    a.assert_problem(404, "not_found");
    let a = app
        .call(
            Method::GET,
            "/api/admin/api-keys?includeRevoked=maybe&x=1",
            Some(&other_key),
            None,
            &[],
        )
        .await;
    assert_eq!(a.field_errors().len(), 2);
}

async fn invalid_key_requests_name_every_problem(app: App) {
    let a = app.post("/api/admin/api-keys", json!({})).await;
    a.assert_problem(422, "validation_failed");
    assert_eq!(
        a.field_errors(),
        [
            ("kind".into(), "required".into()),
            ("name".into(), "required".into())
        ]
    );
    let a = app
        .post(
            "/api/admin/api-keys",
            json!({"name": " ", "kind": "root", "secret": "x"}),
        )
        .await;
    assert_eq!(
        a.field_errors(),
        [
            ("kind".into(), "invalid_value".into()),
            ("name".into(), "required".into()),
            ("secret".into(), "unknown_field".into())
        ]
    );
    let a = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "p", "kind": "partner"}),
        )
        .await;
    assert_eq!(
        a.field_errors(),
        [("organizationId".into(), "required".into())]
    );
    let a = app
        .post("/api/admin/api-keys", json!({"name": "p", "kind": "platform", "organizationId": "0190a3c1-0000-7000-8000-000000000000"}))
        .await;
    assert_eq!(
        a.field_errors(),
        [("organizationId".into(), "invalid_value".into())]
    );
    // An explicit null organization is the same as none.
    let a = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "n", "kind": "platform", "organizationId": null}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.delete(&format!("/api/admin/api-keys/{id}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // Nothing was created by any of the refused ones.
    assert_eq!(
        app.get("/api/admin/api-keys?includeRevoked=true")
            .await
            .body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

crate::api_tests!(
    a_new_key_is_shown_once_and_works,
    revoking_lists_and_guards_the_last_key,
    invalid_key_requests_name_every_problem,
);
