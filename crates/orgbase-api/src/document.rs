//! What the generated OpenAPI document cannot learn from the request types alone, added from
//! what the routes do, so that `openapi.json` says what the server does (a test sends each body
//! and compares):
//! - every JSON request body refuses unknown fields (the body extractor does): its schema gets
//!   `additionalProperties: false`;
//! - a `#[serde(default)]` input shows `default: null` on every field, which a non-nullable
//!   field's schema must not: the null defaults go;
//! - one input type serves a creation and an update whose rules differ: the creation gets a
//!   schema of its own with its required fields, and each drops the fields it refuses.
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

/// Applies the refinements to the document `doc` (as JSON).
pub fn refine(doc: &mut Value) {
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
