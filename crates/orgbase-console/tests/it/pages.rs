//! The organizations pages and the status action, as the platform, a partner and a viewer.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::Console;

crate::console_tests!(
    the_list_searches_filters_and_pages,
    the_list_filters_by_type_partner_and_metadata,
    an_operator_suspends_and_the_page_shows_access_and_audit,
    a_suspension_without_a_reason_is_refused_next_to_its_field,
    a_viewer_sees_no_status_action_and_a_forged_one_changes_nothing,
);

async fn the_list_searches_filters_and_pages(c: Console) {
    for i in 0..55 {
        c.org(&format!("Acme {i:02}")).await;
    }
    let other = c.org("Globex").await;
    c.api(
        Method::PATCH,
        &format!("/api/organizations/{}", other["id"].as_str().unwrap()),
        None,
        Some(json!({"status": "inactive"})),
    )
    .await;
    c.sign_in_with_key().await;

    let first = c.get("/console/organizations").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.text.matches("<tr>").count(),
        1 + 50,
        "a header and 50 rows"
    );
    let next = first
        .text
        .split("href=\"")
        .find(|s| s.starts_with("/console/organizations?after="));
    let next = &next.expect("a next page")[..next.unwrap().find('"').unwrap()];
    let second = c.get(&next.replace("&amp;", "&")).await;
    assert_eq!(
        second.text.matches("<tr>").count(),
        1 + 6,
        "{}",
        second.text
    );
    assert!(!second.text.contains("rel=\"next\""));

    let found = c.get("/console/organizations?q=glob").await;
    assert!(found.text.contains("Globex"));
    assert_eq!(found.text.matches("<tr>").count(), 2);
    let inactive = c.get("/console/organizations?status=inactive").await;
    assert!(inactive.text.contains("Globex") && !inactive.text.contains("Acme"));
    assert!(inactive
        .text
        .contains("<option value=\"inactive\" selected>"));
    let short = c.get("/console/organizations?q=gl").await;
    assert!(short.text.contains("id=\"q-error\""), "{}", short.text);
    let bad = c.get("/console/organizations?status=gone").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

async fn an_operator_suspends_and_the_page_shows_access_and_audit(c: Console) {
    let org = c.org("Suspend Me").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    // A new organization has an empty wallet: voice is refused for it.
    assert!(page.text.contains("insufficient_balance"), "{}", page.text);
    assert!(!page.text.contains("organization_suspended"));
    assert!(page.text.contains("organization.created"), "the audit log");

    let p = c
        .post(
            &format!("/console/organizations/{id}/status"),
            &[
                ("csrf", &page.csrf()),
                ("status", "suspended"),
                ("reason", "Unpaid invoices"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert_eq!(
        p.location.as_deref(),
        Some(format!("/console/organizations/{id}").as_str())
    );

    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(
        page.text.contains("organization_suspended"),
        "{}",
        page.text
    );
    assert!(page.text.contains("Unpaid invoices"));
    assert!(page.text.contains(">Reactivate<"));
    // The change is the API's: audited through the console, seen by the API.
    let now = c.stored(id).await;
    assert_eq!(now["status"], "suspended");
    assert_eq!(now["statusReason"], "Unpaid invoices");
    let updated = c.audited(id, "organization.updated").await;
    let entry = &updated[0];
    assert_eq!(entry["surface"], "console");
    assert_eq!(entry["changes"]["status"]["after"], "suspended");
    assert!(page.text.contains("<td>console</td>"), "{}", page.text);

    let p = c
        .post(
            &format!("/console/organizations/{id}/status"),
            &[("csrf", &page.csrf()), ("status", "active")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let now = c.stored(id).await;
    assert_eq!(now["status"], "active");
    assert_eq!(now["statusReason"], serde_json::Value::Null);
}

async fn a_suspension_without_a_reason_is_refused_next_to_its_field(c: Console) {
    let org = c.org("Needs A Reason").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let csrf = c.csrf(&format!("/console/organizations/{id}")).await;
    let p = c
        .post(
            &format!("/console/organizations/{id}/status"),
            &[("csrf", &csrf), ("status", "suspended"), ("reason", "  ")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert!(p.text.contains("id=\"reason-error\""), "{}", p.text);
    assert!(p.text.contains("aria-describedby=\"reason-error\""));
    let now = c.stored(id).await;
    assert_eq!(now["status"], "active");
    assert_eq!(now["version"], org["version"]);
}

async fn a_viewer_sees_no_status_action_and_a_forged_one_changes_nothing(c: Console) {
    let org = c.org("Viewed").await;
    let id = org["id"].as_str().unwrap();
    c.person(id, "viewer@example.com", &[5]).await;
    let csrf = c.csrf("/console/sign-in").await;
    let p = c
        .post(
            "/console/sign-in/password",
            &[
                ("csrf", &csrf),
                ("email", "viewer@example.com"),
                ("password", "password123"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        !page.text.contains("/status\""),
        "no status form: {}",
        page.text
    );
    assert!(!page.text.contains(">Suspend<"));
    let p = c
        .post(
            &format!("/console/organizations/{id}/status"),
            &[
                ("csrf", &page.csrf()),
                ("status", "suspended"),
                ("reason", "forged"),
            ],
        )
        .await;
    assert!(
        [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&p.status),
        "{}: {}",
        p.status,
        p.text
    );
    let now = c.stored(id).await;
    assert_eq!(now["status"], "active");
    assert_eq!(now["version"], org["version"]);
}

async fn the_list_filters_by_type_partner_and_metadata(c: Console) {
    let partner = c
        .org_with(json!({"name": "Reseller", "countryCode": "US", "type": "partner"}))
        .await;
    let pid = partner["id"].as_str().unwrap();
    c.org_with(
        json!({"name": "Child Gold", "countryCode": "US", "parentId": pid,
        "metadata": {"tier": "gold"}}),
    )
    .await;
    c.org_with(json!({"name": "Child Plain", "countryCode": "US", "parentId": pid}))
        .await;
    c.org_with(json!({"name": "Loner Gold", "countryCode": "US", "metadata": {"tier": "gold"}}))
        .await;
    c.sign_in_with_key().await;
    let names = |text: &str| -> Vec<String> {
        text.split("\">")
            .skip(1)
            .filter_map(|s| s.split_once("</a></td>").map(|(n, _)| n.to_owned()))
            .collect()
    };

    let page = c.get("/console/organizations?type=partner").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(names(&page.text), ["Reseller"]);
    let page = c
        .get(&format!("/console/organizations?partner={pid}"))
        .await;
    assert_eq!(names(&page.text), ["Child Plain", "Child Gold"]);
    let page = c.get("/console/organizations?metadata=tier%3Dgold").await;
    assert_eq!(names(&page.text), ["Loner Gold", "Child Gold"]);
    assert!(
        page.text.contains("value=\"tier=gold\""),
        "the filter is kept"
    );
    let page = c
        .get(&format!(
            "/console/organizations?metadata=tier%3Dgold&partner={pid}"
        ))
        .await;
    assert_eq!(names(&page.text), ["Child Gold"]);
    // The partner's page links to its customers, and a child's to its partner.
    let shown = c.get(&format!("/console/organizations/{pid}")).await;
    assert!(shown
        .text
        .contains(&format!("/console/organizations?partner={pid}")));

    // A bad filter is said next to its field, and lists nothing.
    for (query, field) in [
        ("partner=nope", "partner-error"),
        ("metadata=tier", "metadata-error"),
    ] {
        let page = c.get(&format!("/console/organizations?{query}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.text.contains(&format!("id=\"{field}\"")),
            "{query}: {}",
            page.text
        );
        assert!(names(&page.text).is_empty(), "{query}");
    }
    let page = c.get("/console/organizations?type=huge").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);

    // A partner's key lists its own and its children only, whatever the filter.
    let (status, key) = c
        .api(
            Method::POST,
            "/api/admin/api-keys",
            None,
            Some(json!({"name": "console", "kind": "partner", "organizationId": pid})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    c.sign_out().await;
    let csrf = c.csrf("/console/sign-in").await;
    let p = c
        .post(
            "/console/sign-in/key",
            &[("csrf", &csrf), ("key", key["key"].as_str().unwrap())],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let page = c.get("/console/organizations?metadata=tier%3Dgold").await;
    assert_eq!(names(&page.text), ["Child Gold"]);
}
