//! `openapi.json` says what the server does: for every JSON request body, which fields are
//! required, which may be null, and whether unknown fields are refused, checked against the
//! answers of the running server.
use reqwest::Method;
use serde_json::{json, Value};

use crate::App;

crate::api_tests!(
    request_bodies_are_described_as_they_are_judged,
    the_partner_settings_are_described_as_they_are_judged,
    a_repeated_bad_parameter_is_one_error,
    a_whole_number_written_with_a_point_is_taken,
    the_blanks_around_a_name_are_the_documents,
);

/// A name may have at its ends exactly the blanks the document's pattern allows there, whose
/// engine says what `\s` is (ECMA-262 and Python differ on U+FEFF, U+001C-U+001F and U+0085):
/// the pattern lists them, and the server trims those and no others.
async fn the_blanks_around_a_name_are_the_documents(app: App) {
    let doc: Value = serde_json::from_str(&orgbase_api::openapi_json()).unwrap();
    let pattern = doc["components"]["schemas"]["NewOrganizationInput"]["properties"]["name"]
        ["pattern"]
        .as_str()
        .unwrap();
    let pattern = regex::Regex::new(pattern).unwrap();
    for name in [
        "  Acme\t\n",
        "\u{a0}Acme\u{3000}",
        "\u{feff}Acme\u{2029}",
        "\u{1680}\u{2000}Acme\u{200a}\u{202f}\u{205f}",
        "\u{85}Acme",
        "Acme\u{1c}",
        "\u{1f}Acme",
        "\u{a0}",
    ] {
        let a = app
            .post(
                "/api/organizations",
                json!({"name": name, "countryCode": "US"}),
            )
            .await;
        assert_eq!(
            a.status.is_success(),
            pattern.is_match(name),
            "{name:?}: {} {}",
            a.status,
            a.text
        );
        if a.status.is_success() {
            assert_eq!(a.body["name"], "Acme", "{name:?}");
        }
    }
}

/// JSON Schema's `integer` includes `500.0`; so does the server.
async fn a_whole_number_written_with_a_point_is_taken(app: App) {
    let org = app.org(json!({"name": "Point", "countryCode": "US"})).await;
    let id = org["id"].as_str().unwrap();
    let a = app
        .post(
            &format!("/api/admin/organizations/{id}/credit"),
            json!({"amount": 500.0}),
        )
        .await;
    assert!(a.status.is_success(), "{}", a.text);
    let a = app
        .post(
            &format!("/api/admin/organizations/{id}/credit"),
            json!({"amount": 500.5}),
        )
        .await;
    a.assert_problem(422, "validation_failed");
    let w = app.get(&format!("/api/organizations/{id}/wallet")).await;
    assert_eq!(w.body["balance"], 500, "{}", w.text);
    // The properties API too.
    for (days, status) in [(json!(30.0), 200), (json!(30.5), 400)] {
        let r = app
            .http
            .patch(format!("{}/v1/orgs/{id}/properties", app.base))
            .header("authorization", app.key.as_str())
            .json(&json!({"updates": {"preferences": {"recording_lifespan_days": days}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{days}");
    }
    let o = app.get(&format!("/api/organizations/{id}")).await;
    assert_eq!(
        o.body["preferences"]["recordingLifespanDays"], 30,
        "{}",
        o.text
    );
}

/// The document has no `null` where OpenAPI expects an object or a list (a refinement that
/// indexes a missing key inserts one, and client generators refuse the document).
#[test]
fn the_document_has_no_stray_nulls() {
    fn walk(v: &Value, at: &str, found: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    // Values that may be null on purpose.
                    if v.is_null() && !matches!(k.as_str(), "example" | "default" | "const") {
                        found.push(format!("{at}/{k}"));
                    }
                    if !matches!(k.as_str(), "example" | "examples" | "enum" | "const") {
                        walk(v, &format!("{at}/{k}"), found);
                    }
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, &format!("{at}/{i}"), found);
                }
            }
            _ => {}
        }
    }
    let doc: Value = serde_json::from_str(&orgbase_api::openapi_json()).unwrap();
    let mut found = Vec::new();
    walk(&doc, "", &mut found);
    assert!(found.is_empty(), "{found:#?}");
}

/// Every operation has its own id (client generators name methods after them), and every link
/// names an operation that exists, with the path parameters it takes.
#[test]
fn operation_ids_are_unique_and_links_lead_somewhere() {
    let doc: Value = serde_json::from_str(&orgbase_api::openapi_json()).unwrap();
    let mut ids = std::collections::HashMap::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            let params: Vec<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let earlier = ids.insert(id.to_owned(), params);
            assert!(earlier.is_none(), "operationId {id} is used twice");
        }
    }
    let mut links = 0;
    for ops in doc["paths"].as_object().unwrap().values() {
        for op in ops.as_object().unwrap().values() {
            for answer in op["responses"].as_object().unwrap().values() {
                for (name, link) in answer["links"].as_object().into_iter().flatten() {
                    links += 1;
                    let target = link["operationId"].as_str().unwrap();
                    let params = ids
                        .get(target)
                        .unwrap_or_else(|| panic!("link {name}: no {target}"));
                    let mut given: Vec<&str> = link["parameters"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .map(String::as_str)
                        .collect();
                    let mut wanted: Vec<&str> = params.iter().map(String::as_str).collect();
                    given.sort_unstable();
                    wanted.sort_unstable();
                    assert_eq!(given, wanted, "link {name}");
                }
            }
        }
    }
    assert!(links >= 15, "only {links} links");
}

/// Bounds written in the schema attributes are the domain's (utoipa takes literals only).
#[test]
fn schema_bounds_are_the_domains() {
    let doc: Value = serde_json::from_str(&orgbase_api::openapi_json()).unwrap();
    let s = &doc["components"]["schemas"];
    // SMS points are bounded where they count: in a charge for SMS.
    let sms_points = &s["ChargeInput"]["then"]["properties"]["sms_point"];
    for (at, field, max) in [
        (
            &s["ChargeInput"]["properties"]["amount"],
            "ChargeInput.amount",
            orgbase_domain::wallet::MAX_AMOUNT,
        ),
        (
            &s["CreditInput"]["properties"]["amount"],
            "CreditInput.amount",
            orgbase_domain::wallet::MAX_AMOUNT,
        ),
        (
            sms_points,
            "ChargeInput.sms_point",
            orgbase_domain::wallet::MAX_SMS_POINTS,
        ),
    ] {
        assert_eq!(at["maximum"], json!(max), "{field}");
        assert_eq!(at["minimum"], json!(1), "{field}");
    }
    let rate = orgbase_domain::organization::MAX_RATE_LIMIT;
    for schema in ["NewOrganizationInput", "NewPlanInput"] {
        assert_eq!(
            s[schema]["properties"]["rateLimit"]["maximum"],
            json!(rate),
            "{schema}"
        );
    }
}

async fn a_repeated_bad_parameter_is_one_error(app: App) {
    let a = app
        .get("/api/admin/api-keys?includeRevoked=maybe&includeRevoked=maybe")
        .await;
    a.assert_problem(422, "validation_failed");
    assert_eq!(
        a.field_errors(),
        vec![("includeRevoked".to_owned(), "invalid_value".to_owned())],
        "{}",
        a.text
    );
}

/// The schema `s` stands for, following a `$ref`.
fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    match s["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => s,
    }
}

fn nullable(p: &Value) -> bool {
    p["type"]
        .as_array()
        .is_some_and(|t| t.contains(&json!("null")))
        || p["oneOf"]
            .as_array()
            .is_some_and(|o| o.iter().any(|s| s["type"] == "null"))
}

async fn request_bodies_are_described_as_they_are_judged(app: App) {
    let doc: Value = serde_json::from_str(&orgbase_api::openapi_json()).unwrap();
    let org = app
        .org(json!({"name": "Contract", "countryCode": "US"}))
        .await;
    let org_id = org["id"].as_str().unwrap().to_owned();
    // Real objects for the other path parameters, so that each route reaches its body.
    let plan = app
        .post(
            "/api/admin/plans",
            json!({"id": "contract", "name": "Contract", "price": 100}),
        )
        .await;
    assert!(plan.status.is_success(), "{}", plan.text);
    let role = app
        .post(
            &format!("/api/organizations/{org_id}/roles"),
            json!({"name": "contract-role", "permissions": ["org:read"]}),
        )
        .await;
    assert!(role.status.is_success(), "{}", role.text);
    let workspace = app
        .post(
            &format!("/api/organizations/{org_id}/workspaces"),
            json!({"name": "contract-space"}),
        )
        .await;
    assert!(workspace.status.is_success(), "{}", workspace.text);
    let (_, member) = app.person(&org_id, "contract@member.test", &[3]).await;
    let ids = [
        ("{organizationId}", org_id.clone()),
        ("{organization}", org_id.clone()),
        ("{planId}", "contract".to_owned()),
        ("{roleId}", id_of(&role.body)),
        ("{workspaceId}", id_of(&workspace.body)),
        ("{memberId}", member.to_string()),
    ];
    let mut mismatches = Vec::new();
    let mut walked = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(schema) = op["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|_| &op["requestBody"]["content"]["application/json"]["schema"])
            else {
                continue;
            };
            let schema = resolve(&doc, schema);
            let Some(props) = schema["properties"].as_object() else {
                continue;
            };
            // Routes on objects not made above (an invitation token) are left out.
            let path_for_test = ids
                .iter()
                .fold(path.clone(), |p, (name, id)| p.replace(name, id));
            // The partner settings API answers per setting (`failedSettings`), not per field:
            // its own tests judge it (`partners`, the golden files).
            if path_for_test.contains('{') || path.starts_with("/api/v2/") {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let send = |body: Value| {
                let (app, method, path) = (&app, method.clone(), path_for_test.clone());
                async move {
                    app.call(method, &path, Some(&app.key), Some(&body), &[])
                        .await
                }
            };
            let label = format!("{method} {path}");
            walked.push(label.clone());

            // Required: `{}` is refused for exactly the required fields.
            let a = send(json!({})).await;
            let said: Vec<String> = schema["required"]
                .as_array()
                .map(|r| r.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            let mut found: Vec<String> = a
                .field_errors()
                .into_iter()
                .filter(|(_, code)| code == "required")
                .map(|(f, _)| f)
                .collect();
            found.sort();
            let mut said_sorted = said.clone();
            said_sorted.sort();
            if found != said_sorted {
                mismatches.push(format!(
                    "{label}: required is {said_sorted:?}, the server requires {found:?}"
                ));
            }

            // Null: refused exactly where the document does not allow it.
            for (name, p) in props {
                let a = send(json!({ name.as_str(): null })).await;
                let refused = a.field_errors().iter().any(|(f, _)| f == name);
                if refused == nullable(p) {
                    mismatches.push(format!(
                        "{label}: `{name}` is {} in the document, and null is {} ({} {})",
                        if nullable(p) {
                            "nullable"
                        } else {
                            "not nullable"
                        },
                        if refused { "refused" } else { "taken" },
                        a.status,
                        a.text
                    ));
                }
            }

            // Unknown fields inside a nested object: refused where its schema is closed.
            for (name, p) in props {
                let inner = p["oneOf"]
                    .as_array()
                    .and_then(|o| o.iter().find(|s| s["$ref"].is_string()))
                    .unwrap_or(p);
                let inner = resolve(&doc, inner);
                if inner["type"] != "object" || inner["properties"].is_null() {
                    continue;
                }
                let a = send(json!({ name.as_str(): {"zzUnknownField": 1} })).await;
                let refused = a
                    .field_errors()
                    .iter()
                    .any(|(f, _)| f == &format!("{name}.zzUnknownField"));
                if refused != (inner["additionalProperties"] == json!(false)) {
                    mismatches.push(format!(
                        "{label}: `{name}` has additionalProperties {}, and an unknown field in \
                         it is {} ({})",
                        inner["additionalProperties"],
                        if refused { "refused" } else { "taken" },
                        a.text
                    ));
                }
            }

            // Unknown fields: refused exactly where additionalProperties is false.
            let a = send(json!({"zzUnknownField": 1})).await;
            let refused = a.field_errors().iter().any(|(f, _)| f == "zzUnknownField");
            let closed = schema["additionalProperties"] == json!(false);
            if refused != closed {
                mismatches.push(format!(
                    "{label}: additionalProperties is {}, and an unknown field is {}",
                    schema["additionalProperties"],
                    if refused { "refused" } else { "taken" }
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "\n{}", mismatches.join("\n"));
    // Every JSON body but the invitation's acceptance (its token only goes by e-mail), and the
    // compatible APIs' free-form bodies (their own tests and golden files pin them).
    assert_eq!(walked.len(), 20, "{walked:#?}");
}

/// The `id` of a created object, whichever shape the answer has.
fn id_of(body: &Value) -> String {
    let id = if body["id"].is_null() {
        &body["data"]["id"]
    } else {
        &body["id"]
    };
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The partner settings API's body: the document names each setting the server knows, with the
/// settings that take null (to remove) as nullable; an unknown one fails.
async fn the_partner_settings_are_described_as_they_are_judged(app: App) {
    let doc: Value = serde_json::from_str(&orgbase_api::openapi_json()).unwrap();
    let schema = &doc["paths"]["/api/v2/updateOrganization"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(schema["additionalProperties"], json!(false));
    let org = app
        .org(json!({"name": "Settings", "countryCode": "US"}))
        .await;
    let id = org["id"].as_str().unwrap();
    let send = |body: Value| {
        let app = &app;
        async move {
            let r = app
                .http
                .post(format!(
                    "{}/api/v2/updateOrganization?token={}&targetOrganizationId={id}",
                    app.base, app.key
                ))
                .json(&body)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let failed = |answer: &Value, name: &str| {
        answer["failedSettings"]
            .as_array()
            .is_some_and(|f| f.contains(&json!(name)))
    };
    let props = schema["properties"].as_object().unwrap();
    assert_eq!(props.len(), 11, "{props:#?}");
    let mut mismatches = Vec::new();
    for (name, p) in props {
        let answer = send(json!({ name.as_str(): null })).await;
        let failed = failed(&answer, name);
        if failed == nullable(p) {
            mismatches.push(format!(
                "`{name}`: nullable {}, null failed {failed}: {answer}",
                nullable(p)
            ));
        }
    }
    let answer = send(json!({"zzUnknownSetting": true})).await;
    assert!(failed(&answer, "zzUnknownSetting"), "{answer}");
    assert!(mismatches.is_empty(), "\n{}", mismatches.join("\n"));
}
