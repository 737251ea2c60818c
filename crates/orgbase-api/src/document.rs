//! What the generated OpenAPI document cannot learn from the request types alone, added from
//! what the routes do, so that `openapi.json` says what the server does (a test sends each body
//! and compares):
//! - every JSON request body refuses unknown fields (the body extractor does): its schema gets
//!   `additionalProperties: false`;
//! - a `#[serde(default)]` input shows `default: null` on every field, which a non-nullable
//!   field's schema must not: the null defaults go;
//! - one input type serves a creation and an update whose rules differ: the creation gets a
//!   schema of its own with its required fields, and each drops the fields it refuses;
//! - the answers every native route can give besides its own: 401 and 403 behind a credential,
//!   404 with a path parameter, 422 with query parameters, 400/413/415 with a JSON body, 503
//!   when the database is away or the request times out;
//! - the closed sets of query values, and the document's own routes.
use serde_json::{json, Value};

/// A request body that differs between its routes: the route, the schema it gets, the fields
/// required there, and the fields that route refuses.
struct Variant {
    method: &'static str,
    path: &'static str,
    base: &'static str,
    name: &'static str,
    required: &'static [&'static str],
    refused: &'static [&'static str],
}

const VARIANTS: [Variant; 6] = [
    Variant {
        method: "post",
        path: "/api/organizations",
        base: "OrganizationInput",
        name: "NewOrganizationInput",
        required: &["name", "countryCode"],
        // A new organization starts on the default plan; a plan is set or offered afterwards.
        refused: &["productPlanId", "offeredProductPlanId"],
    },
    Variant {
        method: "patch",
        path: "/api/organizations/{organizationId}",
        base: "OrganizationInput",
        name: "OrganizationPatchInput",
        required: &[],
        // Ownership moves by a transfer.
        refused: &["ownerEmail", "ownerName"],
    },
    Variant {
        method: "post",
        path: "/api/admin/plans",
        base: "PlanInput",
        name: "NewPlanInput",
        required: &["id", "name", "price"],
        refused: &[],
    },
    Variant {
        method: "patch",
        path: "/api/admin/plans/{planId}",
        base: "PlanInput",
        name: "PlanPatchInput",
        required: &[],
        // A plan's id is its name in every reference to it.
        refused: &["id"],
    },
    Variant {
        method: "post",
        path: "/api/organizations/{organizationId}/roles",
        base: "RoleInput",
        name: "NewRoleInput",
        required: &["name", "permissions"],
        refused: &[],
    },
    Variant {
        method: "patch",
        path: "/api/organizations/{organizationId}/roles/{roleId}",
        base: "RoleInput",
        name: "RolePatchInput",
        required: &[],
        refused: &[],
    },
];

/// Query parameters with a closed set of values: route, method, parameter, values.
const QUERY_ENUMS: [(&str, &str, &str, &[&str]); 3] = [
    (
        "/api/organizations",
        "get",
        "status",
        &["active", "inactive", "suspended", "deleted"],
    ),
    ("/api/organizations", "get", "type", &["normal", "partner"]),
    (
        "/api/organizations/{organizationId}/invitations",
        "get",
        "status",
        &["pending", "all"],
    ),
];

/// The answers a native route gives besides its own (see the module's documentation).
fn common_answers(path: &str, op: &mut Value) {
    if !path.starts_with("/api/") || path.starts_with("/api/v2/") {
        return;
    }
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        })
    };
    let add = |op: &mut Value, status: &str, description: &str| {
        if op["responses"].get(status).is_none() {
            op["responses"][status] = problem(description);
        }
    };
    if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
        add(op, "401", "No valid credential (`missing_credentials`, `invalid_credentials`, `revoked_credentials`, `expired_credentials`)");
        add(op, "403", "The credential may not do this (`forbidden`)");
    }
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    if params.iter().any(|p| p["in"] == "path") {
        add(
            op,
            "404",
            "No such resource within the caller's reach (`not_found`)",
        );
    }
    if params.iter().any(|p| p["in"] == "query") {
        add(
            op,
            "422",
            "An invalid or unknown query parameter, each named (`validation_failed`)",
        );
    }
    if op["requestBody"]["content"]["application/json"].is_object() {
        add(op, "400", "The body is not JSON (`malformed_json`)");
        add(
            op,
            "413",
            "The body is over the limit (`payload_too_large`)",
        );
        add(
            op,
            "415",
            "The body is not `application/json` (`unsupported_media_type`)",
        );
        add(
            op,
            "422",
            "Invalid or unknown fields, each named (`validation_failed`)",
        );
    }
    add(op, "503", "The database cannot be reached, or the request was not answered in time (`database_unavailable`, `request_timeout`); with `Retry-After`");
}

/// A cursor is base64url, as the lists give it out.
fn cursor_alphabet(op: &mut Value) {
    // `get_mut`, not indexing: an index would insert `parameters: null`.
    let params = op.get_mut("parameters").and_then(Value::as_array_mut);
    for p in params.into_iter().flatten() {
        if p["name"] == "cursor" && p["in"] == "query" {
            p["schema"]["pattern"] = json!("^[A-Za-z0-9_-]+$");
        }
    }
}

/// Applies the refinements to the document `doc` (as JSON).
pub fn refine(doc: &mut Value) {
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, ops) in paths.iter_mut() {
            for op in ops.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
                common_answers(path, op);
                cursor_alphabet(op);
            }
        }
    }
    for (path, method, name, values) in QUERY_ENUMS {
        for p in doc["paths"][path][method]["parameters"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if p["name"] == name && p["in"] == "query" {
                p["schema"]["enum"] = json!(values);
            }
        }
    }
    doc["paths"]["/openapi.json"] = json!({"get": {
        "tags": ["Operations"],
        "summary": "This document",
        "operationId": "openapi_json",
        "responses": {"200": {"description": "The OpenAPI 3.1 document", "content": {"application/json": {"schema": {"type": "object"}}}}}
    }});
    doc["paths"]["/docs"] = json!({"get": {
        "tags": ["Operations"],
        "summary": "This document, to browse",
        "operationId": "docs",
        "responses": {"200": {"description": "An HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}
    }});
    for v in &VARIANTS {
        let mut schema = doc["components"]["schemas"][v.base].clone();
        if let Some(props) = schema["properties"].as_object_mut() {
            for f in v.refused {
                props.remove(*f);
            }
        }
        if v.required.is_empty() {
            if let Some(o) = schema.as_object_mut() {
                o.remove("required");
            }
        } else {
            schema["required"] = json!(v.required);
        }
        doc["components"]["schemas"][v.name] = schema;
        doc["paths"][v.path][v.method]["requestBody"]["content"]["application/json"]["schema"] =
            json!({"$ref": format!("#/components/schemas/{}", v.name)});
    }
    // The schemas JSON bodies name, and what those name in turn.
    let mut bodies = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for ops in paths.values() {
            for op in ops.as_object().into_iter().flat_map(|o| o.values()) {
                let s = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
                if let Some(r) = s.as_str() {
                    bodies.push(r.rsplit('/').next().unwrap_or_default().to_owned());
                }
            }
        }
    }
    let mut i = 0;
    while i < bodies.len() {
        let name = bodies[i].clone();
        let schema = &mut doc["components"]["schemas"][&name];
        if let Some(o) = schema.as_object_mut() {
            o.insert("additionalProperties".into(), json!(false));
        }
        if let Some(props) = schema["properties"].as_object_mut() {
            for p in props.values_mut() {
                if p.get("default") == Some(&Value::Null) {
                    p.as_object_mut().map(|o| o.remove("default"));
                }
                for r in refs(p) {
                    if !bodies.contains(&r) {
                        bodies.push(r);
                    }
                }
            }
        }
        i += 1;
    }
    // The base schemas are no longer named by any route.
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for v in &VARIANTS {
            let named = v.base;
            if !VARIANTS.iter().any(|w| w.name == named) {
                schemas.remove(named);
            }
        }
    }
    // Last: the per-route schemas exist by now.
    item_rules(doc);
    compatible_bodies(doc);
}

/// The component names `schema` refers to, directly or in `oneOf`/`items`.
fn refs(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = schema["$ref"].as_str() {
        out.push(r.rsplit('/').next().unwrap_or_default().to_owned());
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for s in schema[key].as_array().into_iter().flatten() {
            out.extend(refs(s));
        }
    }
    if schema.get("items").is_some() {
        out.extend(refs(&schema["items"]));
    }
    out
}

/// The rules of list items and across fields, which the types' attributes cannot carry.
fn item_rules(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    let permissions: Vec<&str> = orgbase_domain::Permission::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    for role in ["NewRoleInput", "RolePatchInput"] {
        schemas[role]["properties"]["permissions"]["items"]["enum"] = json!(permissions);
    }
    // orgbase_domain::organization::parse_entitlements: `[A-Za-z0-9_.:-]{1,64}` each.
    for (schema, max) in [
        (
            "NewOrganizationInput",
            orgbase_domain::organization::MAX_ENTITLEMENTS,
        ),
        (
            "OrganizationPatchInput",
            orgbase_domain::organization::MAX_ENTITLEMENTS,
        ),
        (
            "NewPlanInput",
            orgbase_domain::organization::MAX_ENTITLEMENTS,
        ),
        (
            "PlanPatchInput",
            orgbase_domain::organization::MAX_ENTITLEMENTS,
        ),
    ] {
        let e = &mut schemas[schema]["properties"]["entitlements"];
        e["items"]["pattern"] = json!("^[A-Za-z0-9_.:-]{1,64}$");
        // Repeated names are taken once, not refused: no uniqueItems.
        e["maxItems"] = json!(max);
    }
    // orgbase_domain::organization::parse_recording_lifespan: -1 (no limit) or 1–1825 days.
    schemas["PreferencesInput"]["properties"]["recordingLifespanDays"] = json!({
        "description": "1–1825 days, or -1 for no limit; null to clear.",
        "oneOf": [
            {"type": "null"},
            {"type": "integer", "const": -1},
            {"type": "integer", "minimum": 1, "maximum": 1825}
        ]
    });
    // A charge for SMS names its points, within their range; another service ignores them.
    let points = schemas["ChargeInput"]["properties"]["sms_point"].clone();
    if let Some(p) = schemas["ChargeInput"]["properties"]["sms_point"].as_object_mut() {
        p.remove("minimum");
        p.remove("maximum");
    }
    schemas["ChargeInput"]["if"] =
        json!({"properties": {"service": {"const": "sms"}}, "required": ["service"]});
    schemas["ChargeInput"]["then"] =
        json!({"required": ["sms_point"], "properties": {"sms_point": points}});
    // Codes as `CountryCode::parse` takes them (it also takes them trimmed, in lower case).
    let countries = orgbase_domain::organization::CountryCode::all();
    for schema in ["NewOrganizationInput", "OrganizationPatchInput"] {
        schemas[schema]["properties"]["countryCode"]["enum"] = json!(countries);
    }
    // `Metadata::check`: keys `[A-Za-z0-9_.-]{1,64}`, at most 50, values strings (at most 500
    // characters, no NUL), numbers, booleans, or null to remove.
    for schema in ["NewOrganizationInput", "OrganizationPatchInput"] {
        let m = &mut schemas[schema]["properties"]["metadata"];
        m["propertyNames"] = json!({"pattern": "^[A-Za-z0-9_.-]{1,64}$"});
        m["maxProperties"] = json!(orgbase_domain::organization::METADATA_MAX_KEYS);
        m["additionalProperties"] = json!({"oneOf": [
            {"type": "string", "maxLength": orgbase_domain::organization::METADATA_MAX_VALUE_CHARS, "pattern": "^[^\\x00]*$"},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"}
        ]});
    }
    // SMS ids as `parse_external_id` takes them.
    for id in ["brandId", "campaignId"] {
        let p = &mut schemas["SmsInput"]["properties"][id];
        p["maxLength"] = json!(255);
        p["pattern"] = json!("^[^\\x00-\\x1f\\x7f-\\x9f]+$");
    }
    // The system roles' names are taken, in any case.
    let system: Vec<String> = orgbase_domain::people::system_roles()
        .iter()
        .map(|r| {
            r.name
                .chars()
                .map(|c| format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()))
                .collect::<String>()
        })
        .collect();
    for schema in ["NewRoleInput", "RolePatchInput"] {
        schemas[schema]["properties"]["name"]["not"] = json!({
            "pattern": format!("^[ \\t\\n\\r\\x0b\\x0c]*({})[ \\t\\n\\r\\x0b\\x0c]*$", system.join("|"))
        });
    }
    // A new organization created suspended says why.
    schemas["NewOrganizationInput"]["if"] =
        json!({"properties": {"status": {"const": "suspended"}}, "required": ["status"]});
    schemas["NewOrganizationInput"]["then"] = json!({
        "required": ["statusReason"],
        "properties": {"statusReason": {"type": "string"}}
    });
    // A new plan names its provider and price together, or neither (`plans::apply`).
    schemas["NewPlanInput"]["oneOf"] = json!([
        {"required": ["provider", "providerPriceId"],
         "properties": {"provider": {"type": "string"}, "providerPriceId": {"type": "string"}}},
        {"properties": {"provider": {"type": "null"}, "providerPriceId": {"type": "null"}}}
    ]);
    // A platform key belongs to no organization; a partner key to its partner.
    schemas["CreateApiKey"]["if"] =
        json!({"properties": {"kind": {"const": "partner"}}, "required": ["kind"]});
    schemas["CreateApiKey"]["then"] = json!({"required": ["organizationId"], "properties": {"organizationId": {"type": "string"}}});
    schemas["CreateApiKey"]["else"] = json!({"properties": {"organizationId": {"type": "null"}}});
}

/// Non-blank text with blanks allowed only at the ends and no control characters: what the
/// trimmed text fields take.
const TRIMMED: &str = r"^[ \t\n\r\x0b\x0c]*[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?[ \t\n\r\x0b\x0c]*$";

/// The properties API's body (`compat::properties::parse_updates`), which its handler reads
/// as JSON itself.
fn compatible_bodies(doc: &mut Value) {
    let body = &mut doc["paths"]["/v1/orgs/{org_id}/properties"]["patch"]["requestBody"]["content"]
        ["application/json"]["schema"];
    *body = json!({
        "type": "object",
        "required": ["updates"],
        "additionalProperties": false,
        "properties": {"updates": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "org_display_name": {"type": "string", "maxLength": 30, "pattern": TRIMMED},
                "preferences": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "use_bland_url": {"type": "boolean"},
                        "recording_lifespan_days": {"oneOf": [
                            {"type": "integer", "const": -1},
                            {"type": "integer", "minimum": 1, "maximum": 1825}
                        ]}
                    }
                }
            }
        }}
    });
}
