//! Golden files for the two compatible surfaces: each file under `tests/golden/<surface>/` is one
//! request and the exact answer it must get (status and body), on both databases. Each runs
//! against an organization of its own, a child of a partner, set up as the file says.
//!
//! A file holds `description`, optional `setup` (`org`: extra fields for its creation;
//! `suspended`: true; `patch`: a native PATCH the platform makes first; `subscription`:
//! {provider, id, status}; `deleted`: true, deleted by the platform last), `request` (`as`: who
//! calls — platform, partner, partner_org_key (the partner organization's own key with scope
//! partner), other_partner, org_editor, org_viewer, session, revoked, wrong, none;
//! `authorization`: bearer (default) or raw, for the properties API; `target`: org (default),
//! partner_itself, missing, unknown, not_uuid; `body` (JSON) or `raw_body` (text)), `status`,
//! `response` (with
//! `{{org_id}}`, `{{org_slug}}`, `{{org_created_ms}}` standing for the organization's values),
//! and optional checks of the organization afterwards: `after` (fields of the native view that
//! must equal), `unchanged: true` (nothing changed at all).
//!
//! `GOLDEN_BLESS=1` writes the answers received into the files (then read every diff).
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

use crate::partners::partner;
use crate::App;

crate::api_tests!(
    partner_settings_answers_as_recorded,
    properties_answers_as_recorded
);

struct World {
    partner_id: String,
    partner_key: String,
    partner_org_key: String,
    other_partner_key: String,
    revoked_key: String,
    session: String,
}

async fn world(app: &App) -> World {
    let (partner_id, partner_key) = partner(app, "Golden Partner").await;
    let own = app
        .post(
            &format!("/api/organizations/{partner_id}/api-keys"),
            json!({"name": "own", "roles": [2], "scope": "partner"}),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.text);
    let (_, other_partner_key) = partner(app, "Other Partner").await;
    for plan in [
        json!({"id": "someProductPlanId", "name": "Some Plan", "price": 1000,
               "entitlements": ["api", "extra-seat"]}),
        json!({"id": "stripe-pro", "name": "Pro", "price": 4900, "provider": "stripe",
               "providerPriceId": "price_pro"}),
    ] {
        let a = app.post("/api/admin/plans", plan).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    // A person who owns something else: their e-mail is taken.
    app.org(json!({"name": "Taken", "countryCode": "US", "ownerEmail": "taken@example.com"}))
        .await;
    let revoked = app
        .post(
            "/api/admin/api-keys",
            json!({"name": "r", "kind": "platform"}),
        )
        .await;
    app.delete(&format!(
        "/api/admin/api-keys/{}",
        revoked.body["id"].as_str().unwrap()
    ))
    .await;
    let scratch = app
        .org(json!({"name": "Scratch", "countryCode": "US"}))
        .await;
    let (session, _) = app
        .person(scratch["id"].as_str().unwrap(), "person@example.com", &[2])
        .await;
    World {
        partner_id,
        partner_org_key: own.body["key"].as_str().unwrap().to_owned(),
        partner_key,
        other_partner_key,
        revoked_key: revoked.body["key"].as_str().unwrap().to_owned(),
        session,
    }
}

fn files(surface: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(surface);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {}", dir.display());
    files
}

/// The values that stand for `{{…}}` in a file.
fn stand_ins(org: &Value) -> Vec<(String, String)> {
    let created = chrono::DateTime::parse_from_rfc3339(org["createdAt"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    vec![
        ("{{org_id}}".into(), org["id"].as_str().unwrap().to_owned()),
        (
            "{{org_slug}}".into(),
            org["slug"].as_str().unwrap().to_owned(),
        ),
        ("{{org_created_ms}}".into(), created),
    ]
}

fn fill(v: &Value, subs: &[(String, String)]) -> Value {
    let mut text = v.to_string();
    for (k, val) in subs {
        text = text.replace(k, val);
    }
    serde_json::from_str(&text).unwrap()
}

fn unfill(v: &Value, subs: &[(String, String)]) -> Value {
    let mut text = v.to_string();
    for (k, val) in subs {
        text = text.replace(val, k);
    }
    serde_json::from_str(&text).unwrap()
}

async fn run(app: App, surface: &str) {
    let w = world(&app).await;
    let bless = std::env::var("GOLDEN_BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for (n, file) in files(surface).into_iter().enumerate() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut case: Map<String, Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let setup = case.get("setup").cloned().unwrap_or(json!({}));

        // The organization: a child of the partner, with an owner.
        let mut create = json!({"name": "Org Name", "countryCode": "US",
                                "ownerEmail": format!("owner{n}@example.com")});
        if let Some(extra) = setup.get("org").and_then(Value::as_object) {
            for (k, v) in extra {
                create[k] = v.clone();
            }
        }
        let a = app
            .as_(
                Some(&w.partner_key),
                Method::POST,
                "/api/organizations",
                Some(create),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{name}: {}", a.text);
        let id = a.body["id"].as_str().unwrap().to_owned();
        let org_path = format!("/api/organizations/{id}");
        if setup.get("suspended") == Some(&json!(true)) {
            let s = app
                .patch(
                    &org_path,
                    json!({"status": "suspended", "statusReason": "unpaid"}),
                )
                .await;
            assert_eq!(s.status, StatusCode::OK, "{name}: {}", s.text);
        }
        if let Some(patch) = setup.get("patch") {
            let s = app.patch(&org_path, patch.clone()).await;
            assert_eq!(s.status, StatusCode::OK, "{name}: {}", s.text);
        }
        if let Some(sub) = setup.get("subscription") {
            let store = &app.db.store;
            let current = store.get_organization(id.parse().unwrap()).await.unwrap();
            let next = orgbase_domain::Organization {
                subscription: Some(serde_json::from_value(sub.clone()).unwrap()),
                version: current.version + 1,
                ..current.clone()
            };
            store.update_organization(&next, &current).await.unwrap();
        }
        if setup.get("deleted") == Some(&json!(true)) {
            let d = app.delete(&org_path).await;
            assert!(d.status.is_success(), "{name}: {}", d.text);
        }
        let before = app.get(&org_path).await.body;
        let subs = stand_ins(&before);

        // Who calls.
        let req = case.get("request").cloned().unwrap_or(json!({}));
        let token: Option<String> =
            match req.get("as").and_then(Value::as_str).unwrap_or("platform") {
                "platform" => Some(app.key.clone()),
                "partner" => Some(w.partner_key.clone()),
                "partner_org_key" => Some(w.partner_org_key.clone()),
                "other_partner" => Some(w.other_partner_key.clone()),
                "revoked" => Some(w.revoked_key.clone()),
                "wrong" => Some("obk_not-a-key-anyone-has".into()),
                "session" => Some(w.session.clone()),
                role @ ("org_editor" | "org_viewer") => {
                    let roles = if role == "org_editor" { [2] } else { [5] };
                    let k = app
                        .post(
                            &format!("{org_path}/api-keys"),
                            json!({"name": role, "roles": roles}),
                        )
                        .await;
                    Some(k.body["key"].as_str().unwrap().to_owned())
                }
                "none" => None,
                other => panic!("{name}: unknown caller {other}"),
            };
        let target_kind = req.get("target").and_then(Value::as_str).unwrap_or("org");
        // The organization `unchanged` watches: the one the request names, when it is one.
        let watched = match target_kind {
            "partner_itself" => format!("/api/organizations/{}", w.partner_id),
            _ => org_path.clone(),
        };
        let watched_before = app.get(&watched).await.body;
        let target = match target_kind {
            "org" => Some(id.clone()),
            "partner_itself" => Some(w.partner_id.clone()),
            "unknown" => Some(uuid::Uuid::now_v7().to_string()),
            "not_uuid" => Some("not-a-uuid".into()),
            "missing" => None,
            other => panic!("{name}: unknown target {other}"),
        };
        let mut http = match surface {
            "partner_settings" => {
                let mut q = Vec::new();
                if let Some(t) = &token {
                    q.push(format!("token={t}"));
                }
                if let Some(t) = &target {
                    q.push(format!("targetOrganizationId={t}"));
                }
                app.http.post(format!(
                    "{}/api/v2/updateOrganization?{}",
                    app.base,
                    q.join("&")
                ))
            }
            "properties" => {
                let mut r = app.http.patch(format!(
                    "{}/v1/orgs/{}/properties",
                    app.base,
                    target.unwrap_or_default()
                ));
                if let Some(t) = &token {
                    let raw = req.get("authorization").and_then(Value::as_str) == Some("raw");
                    let value = if raw {
                        t.clone()
                    } else {
                        format!("Bearer {t}")
                    };
                    r = r.header("authorization", value);
                }
                r
            }
            other => panic!("unknown surface {other}"),
        };
        http = http.header("content-type", "application/json");
        http = match (req.get("body"), req.get("raw_body").and_then(Value::as_str)) {
            (_, Some(raw)) => http.body(raw.to_owned()),
            (Some(b), None) => http.body(b.to_string()),
            (None, None) => http,
        };
        let res = http.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let got: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: the answer is not JSON ({e}): {text}"));

        if bless {
            case.insert("status".into(), json!(status));
            case.insert("response".into(), unfill(&got, &subs));
            let pretty = serde_json::to_string_pretty(&Value::Object(case.clone())).unwrap();
            std::fs::write(&file, pretty + "\n").unwrap();
        } else {
            let want_status = case.get("status").and_then(Value::as_u64);
            let want = case.get("response").map(|r| fill(r, &subs));
            if want_status != Some(status as u64) || want.as_ref() != Some(&got) {
                failures.push(format!(
                    "{name}: expected {want_status:?} {}\n   got {status} {got}",
                    want.unwrap_or(Value::Null)
                ));
            }
        }
        let after = app.get(&org_path).await.body;
        let watched_after = app.get(&watched).await.body;
        if case.get("unchanged") == Some(&json!(true)) && watched_after != watched_before {
            failures.push(format!(
                "{name}: the organization changed:\n{watched_before}\n{watched_after}"
            ));
        }
        if let Some(fields) = case.get("after").and_then(Value::as_object) {
            for (k, v) in fields {
                let v = fill(v, &subs);
                // A dotted name reaches into an object: `sms.enabled`.
                let got = k.split('.').fold(&after, |o, part| &o[part]);
                if *got != v {
                    failures.push(format!("{name}: after, {k} is {got}, expected {v}"));
                }
            }
        }
        if let Some(owner_email) = case.get("owner_email").and_then(Value::as_str) {
            let members = app.get(&format!("{org_path}/members")).await.body;
            let owner = members["data"]["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["isOwner"] == json!(true))
                .cloned()
                .unwrap_or(Value::Null);
            if owner["email"] != owner_email {
                failures.push(format!(
                    "{name}: the owner's e-mail is {}, expected {owner_email}",
                    owner["email"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

async fn partner_settings_answers_as_recorded(app: App) {
    run(app, "partner_settings").await;
}

async fn properties_answers_as_recorded(app: App) {
    run(app, "properties").await;
}
