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

const VARIANTS: [Variant; 10] = [
    Variant {
        method: "post",
        path: "/api/organizations/{organizationId}/webhooks",
        base: "EndpointInput",
        name: "NewEndpointInput",
        required: &["url"],
        refused: &[],
    },
    Variant {
        method: "post",
        path: "/api/admin/webhooks",
        base: "EndpointInput",
        name: "NewEndpointInput",
        required: &["url"],
        refused: &[],
    },
    Variant {
        method: "patch",
        path: "/api/organizations/{organizationId}/webhooks/{endpointId}",
        base: "EndpointInput",
        name: "EndpointPatchInput",
        required: &[],
        refused: &[],
    },
    Variant {
        method: "patch",
        path: "/api/admin/webhooks/{endpointId}",
        base: "EndpointInput",
        name: "EndpointPatchInput",
        required: &[],
        refused: &[],
    },
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

/// Text query parameters and the pattern of what their route takes: route, method, parameter,
/// pattern. A pattern replaces the parameter's lengths (it carries them, counted after trimming
/// where the route trims).
const QUERY_PATTERNS: [(&str, &str, &str, &str); 10] = [
    ("/api/admin/audit-log", "get", "action", AUDIT_TEXT),
    ("/api/admin/audit-log", "get", "actorId", AUDIT_TEXT),
    ("/api/admin/audit-log", "get", "targetId", AUDIT_TEXT),
    (
        "/api/organizations/{organizationId}/audit-log",
        "get",
        "action",
        AUDIT_TEXT,
    ),
    (
        "/api/organizations/{organizationId}/audit-log",
        "get",
        "actorId",
        AUDIT_TEXT,
    ),
    (
        "/api/organizations/{organizationId}/audit-log",
        "get",
        "targetId",
        AUDIT_TEXT,
    ),
    // `parse_list_query`: trimmed (of `\s`: `validation::trim_pattern_space`), 3–100
    // characters; no NUL in any value.
    (
        "/api/organizations",
        "get",
        "q",
        r"^\s*[^\s\x00][^\x00]{1,98}[^\s\x00]\s*$",
    ),
    (
        "/api/organizations",
        "get",
        "externalAccountId",
        r"^[^\x00]*$",
    ),
    ("/api/organizations", "get", "metadata[key]", r"^[^\x00]*$"),
    // The members list: trimmed (of `\s`), 1–100 characters, no NUL.
    (
        "/api/organizations/{organizationId}/members",
        "get",
        "q",
        r"^\s*[^\s\x00]([^\x00]{0,98}[^\s\x00])?\s*$",
    ),
];

/// The audit log's text filters (`audit::parse_query`): 1–200 characters, no NUL.
const AUDIT_TEXT: &str = r"^[^\x00]{1,200}$";

/// OpenAPI links from what a creation answers to the operations on what it created: source
/// operation, its status, the id's place in its answer, the target's path parameter, targets.
const LINKS: [(&str, &str, &str, &str, &[&str]); 9] = [
    (
        "createWebhookEndpoint",
        "201",
        "/id",
        "endpointId",
        &[
            "getWebhookEndpoint",
            "updateWebhookEndpoint",
            "deleteWebhookEndpoint",
            "listWebhookMessages",
        ],
    ),
    (
        "createPlatformWebhookEndpoint",
        "201",
        "/id",
        "endpointId",
        &[
            "getPlatformWebhookEndpoint",
            "updatePlatformWebhookEndpoint",
            "deletePlatformWebhookEndpoint",
            "listPlatformWebhookMessages",
        ],
    ),
    (
        "createOrganization",
        "201",
        "/id",
        "organizationId",
        &[
            "getOrganization",
            "updateOrganization",
            "deleteOrganization",
        ],
    ),
    (
        "createWorkspace",
        "201",
        "/id",
        "workspaceId",
        &["getWorkspace", "updateWorkspace", "deleteWorkspace"],
    ),
    (
        "createRole",
        "201",
        "/id",
        "roleId",
        &["getRole", "updateRole", "deleteRole"],
    ),
    (
        "createOrganizationKey",
        "201",
        "/id",
        "keyId",
        &["revokeOrganizationKey"],
    ),
    (
        "createPlatformKey",
        "201",
        "/id",
        "keyId",
        &["revokePlatformKey"],
    ),
    (
        "createPlan",
        "201",
        "/id",
        "planId",
        &["getPlan", "updatePlan", "deletePlan"],
    ),
    (
        "inviteMember",
        "200",
        "/data/id",
        "invitationId",
        &["resendInvitation", "revokeInvitation"],
    ),
];

/// Adds [`LINKS`]: each target gets the new id, and the organization the creation was made in.
fn links(doc: &mut Value) {
    let mut paths_of = std::collections::HashMap::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                if let Some(id) = op["operationId"].as_str() {
                    paths_of.insert(id.to_owned(), (path.clone(), method.clone()));
                }
            }
        }
    }
    for (source, status, pointer, param, targets) in LINKS {
        let Some((path, method)) = paths_of.get(source) else {
            continue;
        };
        let in_org = path.contains("{organizationId}");
        let mut links = serde_json::Map::new();
        for target in targets {
            let mut parameters = json!({ param: format!("$response.body#{pointer}") });
            if in_org && param != "organizationId" {
                parameters["organizationId"] = json!("$request.path.organizationId");
            }
            links.insert(
                (*target).to_owned(),
                json!({"operationId": target, "parameters": parameters}),
            );
        }
        doc["paths"][path][method]["responses"][status]["links"] = Value::Object(links);
    }
}

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
        add(op, "429", "Over the rate limit of the credential's organization or platform key (`rate_limited`); with `Retry-After`, `RateLimit` and `RateLimit-Policy`. Nothing ran");
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
        "operationId": "getOpenApiDocument",
        "responses": {"200": {"description": "The OpenAPI 3.1 document", "content": {"application/json": {"schema": {"type": "object"}}}}}
    }});
    doc["paths"]["/docs"] = json!({"get": {
        "tags": ["Operations"],
        "summary": "This document, to browse",
        "operationId": "getApiDocs",
        "responses": {"200": {"description": "An HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}
    }});
    for (path, method, name, pattern) in QUERY_PATTERNS {
        for p in doc["paths"][path][method]["parameters"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if p["name"] == name && p["in"] == "query" {
                if let Some(schema) = p["schema"].as_object_mut() {
                    schema.remove("minLength");
                    schema.remove("maxLength");
                    schema.insert("pattern".into(), json!(pattern));
                }
            }
        }
    }
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
    links(doc);
    webhooks(doc);
}

/// The events Orgbase sends, as OpenAPI 3.1 `webhooks`: one per event type, each a POST of a
/// `WebhookEvent` with the Standard Webhooks headers. The test route's `eventType` is one.
fn webhooks(doc: &mut Value) {
    use orgbase_domain::webhook::EventType;
    let types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    for path in [
        "/api/organizations/{organizationId}/webhooks/{endpointId}/test",
        "/api/admin/webhooks/{endpointId}/test",
    ] {
        for p in doc["paths"][path]["post"]["parameters"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if p["name"] == "eventType" {
                p["schema"]["enum"] = json!(types);
            }
        }
    }
    doc["components"]["schemas"]["WebhookEvent"] = json!({
        "type": "object",
        "description": "An event, as a delivery's body. `data` is the object after the change (as it was, for a removal), fields named as in the audit log, secrets left out; `previous` what the changed fields were (null for a creation).",
        "required": ["id", "type", "occurredAt", "organizationId", "data", "previous"],
        "properties": {
            "id": {"type": "string", "pattern": "^evt_[0-9a-f]{32}$", "description": "Also the `webhook-id` header: the same on every attempt and replay"},
            "type": {"type": "string", "enum": types},
            "occurredAt": {"type": "string", "format": "date-time"},
            "organizationId": {"type": ["string", "null"], "format": "uuid"},
            "data": {"type": "object"},
            "previous": {"type": ["object", "null"]}
        }
    });
    let header = |name: &str, description: &str| json!({"name": name, "in": "header", "required": true, "description": description, "schema": {"type": "string"}});
    let mut hooks = serde_json::Map::new();
    for t in EventType::ALL {
        hooks.insert(
            t.as_str().to_owned(),
            json!({"post": {
                "summary": format!("`{}`", t.as_str()),
                "operationId": format!("event_{}", t.as_str().replace('.', "_")),
                "tags": ["Webhooks"],
                "parameters": [
                    header("webhook-id", "The event's id"),
                    header("webhook-timestamp", "Seconds since the epoch, when this attempt was signed"),
                    header("webhook-signature", "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one per secret (two during a rotation), space-separated")
                ],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "allOf": [{"$ref": "#/components/schemas/WebhookEvent"}],
                    "properties": {"type": {"const": t.as_str()}}
                }}}},
                "responses": {"2XX": {"description": "Received. Anything else is retried; 410 disables the endpoint."}}
            }}),
        );
    }
    doc["webhooks"] = Value::Object(hooks);
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
            "pattern": format!("^[\\t-\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]*({})[\\t-\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]*$", system.join("|"))
        });
    }
    // A partner has no parent (`check_hierarchy`); a new organization created suspended says
    // why.
    let partner_has_no_parent = json!({
        "if": {"properties": {"type": {"const": "partner"}}, "required": ["type"]},
        "then": {"properties": {"parentId": {"type": "null"}}}
    });
    schemas["NewOrganizationInput"]["allOf"] = json!([
        partner_has_no_parent,
        {
            "if": {"properties": {"status": {"const": "suspended"}}, "required": ["status"]},
            "then": {"required": ["statusReason"], "properties": {"statusReason": {"type": "string"}}}
        }
    ]);
    schemas["OrganizationPatchInput"]["allOf"] = json!([partner_has_no_parent]);
    // `Email::parse`: the local part is at most 64 characters (RFC 5321), which the address
    // pattern cannot say along with the rest.
    for (schema, field) in [
        ("NewOrganizationInput", "ownerEmail"),
        ("InviteInput", "email"),
    ] {
        schemas[schema]["properties"][field]["allOf"] = json!([{"pattern": LOCAL_PART}]);
    }
    // Web addresses: the domain's patterns, which the server checks.
    use orgbase_domain::organization::{HTTPS_URL_PATTERN, HTTP_URL_PATTERN};
    for schema in ["NewOrganizationInput", "OrganizationPatchInput"] {
        schemas[schema]["properties"]["avatarUrl"]["pattern"] = json!(HTTPS_URL_PATTERN);
    }
    for field in ["successUrl", "cancelUrl"] {
        schemas["CheckoutInput"]["properties"][field]["pattern"] = json!(HTTP_URL_PATTERN);
    }
    // Webhook endpoints: the event types by name, the URL as webhooks take it.
    let event_types: Vec<&str> = orgbase_domain::webhook::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    for schema in ["NewEndpointInput", "EndpointPatchInput"] {
        let p = &mut schemas[schema]["properties"];
        p["eventTypes"]["items"] = json!({"type": "string", "enum": event_types});
        p["url"]["pattern"] = json!(HTTP_URL_PATTERN);
        p["description"]["pattern"] = json!("^[^\\x00]*$");
    }
    // One part, `file`, with at least one byte (`avatars::read_file`).
    schemas["AvatarUpload"]["additionalProperties"] = json!(false);
    schemas["AvatarUpload"]["properties"]["file"]["minLength"] = json!(1);
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
/// trimmed text fields take. The blanks are listed, not written `\s`, whose members differ
/// between engines (ECMA-262's has U+FEFF; Python's, which contract tests run, has U+001C-U+001F
/// and U+0085): they are exactly what the server trims (`validation::trim_pattern_space`). The
/// fields' own patterns (`#[schema(pattern = …)]`) spell the same classes.
const TRIMMED: &str = r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff])?[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$";

/// An e-mail address's local part is 1–64 characters (blanks before it are trimmed).
const LOCAL_PART: &str =
    r"^[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[^@]{1,64}@[^@]*$";

/// The bodies of the compatible APIs, which their handlers read as JSON themselves: the
/// properties API's (`compat::properties::parse_updates`) and the partner settings API's
/// (`compat::partner_settings::parse_one`, each setting as the native field it sets).
fn compatible_bodies(doc: &mut Value) {
    let native = doc["components"]["schemas"]["OrganizationPatchInput"]["properties"].clone();
    let owner_email =
        doc["components"]["schemas"]["NewOrganizationInput"]["properties"]["ownerEmail"].clone();
    let sms_id = doc["components"]["schemas"]["SmsInput"]["properties"]["brandId"].clone();
    let setting = |native: &Value, description: &str, nullable: bool| {
        let mut s = native.clone();
        s["description"] = json!(description);
        s["type"] = if nullable {
            json!(["string", "null"])
        } else {
            json!("string")
        };
        if let Some(o) = s.as_object_mut() {
            o.remove("example");
        }
        s
    };
    let settings = &mut doc["paths"]["/api/v2/updateOrganization"]["post"]["requestBody"]
        ["content"]["application/json"]["schema"];
    *settings = json!({
        "type": "object",
        "description": "The settings to change, at least one. Each is tried on its own: those that pass are committed together and listed in `updatedSettings`, the others are named in `failedSettings` with the reason. An unknown setting fails as such.",
        "minProperties": 1,
        "additionalProperties": false,
        "properties": {
            "active": {"type": "boolean", "description": "false makes the organization inactive: its calls and messages are no longer answered. A suspension is lifted only by the platform."},
            "productPlanId": setting(&native["productPlanId"], "Change the plan. A plan billed through a provider needs a subscription: offer it first.", false),
            "offeredProductPlanId": setting(&native["offeredProductPlanId"], "Offer a plan before checkout; null removes the offer.", true),
            "email": setting(&owner_email, "The owner's e-mail: the owning person's address changes.", false),
            "orgName": setting(&native["name"], "The organization's name.", false),
            "smsEnabled": {"type": "boolean", "description": "Enable SMS; needs a brand and a campaign id, stored or in the same request."},
            "smsBrandId": setting(&sms_id, "The registered SMS brand id; null removes it (not while SMS is enabled).", true),
            "smsCampaignId": setting(&sms_id, "The approved SMS campaign id; null removes it (not while SMS is enabled).", true),
            "vidaPremium": {"type": "boolean", "description": "The account is in an unlocked (paid) state."},
            "externalAccountId": setting(&native["externalAccountId"], "Your system's account id; null removes it.", true),
            "externalBillingId": setting(&native["externalBillingId"], "Your billing system's id; null removes it.", true)
        }
    });

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
