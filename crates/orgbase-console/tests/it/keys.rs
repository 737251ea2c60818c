//! The organization's API keys on its page: made with the secret shown once, and revoked.
use reqwest::{Method, StatusCode};

use crate::Console;

crate::console_tests!(
    a_key_is_made_shown_once_and_revoked,
    a_key_needs_a_name_and_a_viewer_sees_no_keys,
);

async fn a_key_is_made_shown_once_and_revoked(c: Console) {
    let org = c.org("Keyholder").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(page.text.contains("No active key"), "{}", page.text);
    let p = c
        .post(
            &format!("/console/organizations/{id}/keys"),
            &[
                ("csrf", &page.csrf()),
                ("name", "media server"),
                ("role", "5"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
    let at = p.text.find("value=\"obk_").expect("the secret") + "value=\"".len();
    let secret = p.text[at..at + p.text[at..].find('"').unwrap()].to_owned();
    // It works on the API, with its role: a viewer reads, and may not change.
    let read_with_it = || async {
        c.api(
            Method::GET,
            &format!("/api/organizations/{id}"),
            Some(&secret),
            None,
        )
        .await
        .0
    };
    assert_eq!(read_with_it().await, StatusCode::OK);
    let (status, _) = c
        .api(
            Method::PATCH,
            &format!("/api/organizations/{id}"),
            Some(&secret),
            Some(serde_json::json!({"name": "Taken Over"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Listed by name and prefix, never with its secret again.
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(page.text.contains("<td>media server</td>"), "{}", page.text);
    assert!(!page.text.contains(&secret));
    let at = page.text.find("/keys/").unwrap() + "/keys/".len();
    let key_id = page.text[at..at + 36].to_owned();
    let p = c
        .post(
            &format!("/console/organizations/{id}/keys/{key_id}/revoke"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert_eq!(
        read_with_it().await,
        StatusCode::UNAUTHORIZED,
        "revoked at once"
    );
    assert_eq!(
        c.audited(id, "api_key.revoked").await[0]["surface"],
        "console"
    );
}

async fn a_key_needs_a_name_and_a_viewer_sees_no_keys(c: Console) {
    let org = c.org("Nameless").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let csrf = c.csrf(&format!("/console/organizations/{id}")).await;
    let p = c
        .post(
            &format!("/console/organizations/{id}/keys"),
            &[("csrf", &csrf), ("name", "  "), ("role", "5")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert!(p.text.contains("id=\"key-name-error\""));
    assert!(c.audited(id, "api_key.created").await.is_empty());

    c.person(id, "viewer@example.com", &[5]).await;
    c.post("/console/sign-out", &[("csrf", &csrf)]).await;
    c.sign_in_with_password("viewer@example.com").await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(!page.text.contains("API keys"), "{}", page.text);
    let p = c
        .post(
            &format!("/console/organizations/{id}/keys"),
            &[("csrf", &page.csrf()), ("name", "mine"), ("role", "5")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.text);
}
