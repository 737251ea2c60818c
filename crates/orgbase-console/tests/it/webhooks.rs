//! Webhook endpoints in the console: one made (its secret shown once, and the one deliveries are
//! signed with), its messages and attempts read, a message replayed, the endpoint tested,
//! switched off and removed; bad forms refused next to their fields; the platform's own
//! endpoints; and who may not.
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{Console, Page};

// Deliveries go to the receiver on 127.0.0.1 (the address guard is the API's tests' subject).
crate::console_tests!(@with |c: &mut orgbase_api::ApiConfig| c.webhook_allow_private = true;
    an_endpoint_is_made_its_messages_read_and_one_replayed,
    a_bad_endpoint_is_refused_next_to_its_fields_and_nothing_is_made,
    the_platform_has_endpoints_of_its_own,
    a_viewer_and_a_stranger_manage_no_webhooks,
);

/// The text between `start` and the next `"` after it, in `page`.
fn after<'a>(page: &'a str, start: &str) -> &'a str {
    let at = page
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {page}"))
        + start.len();
    &page[at..at + page[at..].find('"').unwrap()]
}

async fn drain(c: &Console) {
    c.state.webhooks.worker.drain().await.unwrap();
}

/// The endpoints the API lists at `path`.
async fn endpoints(c: &Console, path: &str) -> Vec<Value> {
    let (status, body) = c.api(Method::GET, path, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

async fn an_endpoint_is_made_its_messages_read_and_one_replayed(c: Console) {
    let receiver = orgbase_testkit::start_webhook_receiver();
    let org = c.org("Hooked").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(page.text.contains("Webhook endpoints"), "{}", page.text);
    assert!(page.text.contains("No endpoint yet."));

    let url = receiver.url("console");
    let made = c
        .post(
            &format!("/console/organizations/{id}/webhooks"),
            &[
                ("csrf", &page.csrf()),
                ("url", &url),
                ("description", "billing sync"),
                ("eventType", "organization.updated"),
                ("eventType", "wallet.credited"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let secret = after(&made.text, "id=\"secret\" type=\"text\" readonly value=\"").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let listed = endpoints(&c, &format!("/api/organizations/{id}/webhooks")).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["url"], url.as_str());
    assert_eq!(listed[0]["description"], "billing sync");
    assert_eq!(
        listed[0]["eventTypes"],
        json!(["organization.updated", "wallet.credited"])
    );
    let endpoint = listed[0]["id"].as_str().unwrap().to_owned();
    let created = c.audited(id, "webhook_endpoint.created").await;
    assert_eq!(created[0]["surface"], "console");

    // The first delivery fails; the receiver checks the signature with the secret shown.
    receiver
        .configure(
            "console",
            json!({"secrets": [secret], "then": [500], "status": 204}),
        )
        .await;
    let (status, _) = c
        .api(
            Method::PATCH,
            &format!("/api/organizations/{id}"),
            None,
            Some(json!({"name": "Hooked Twice"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    drain(&c).await;

    let base = format!("/console/organizations/{id}/webhooks/{endpoint}");
    let page = c.get(&base).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("organization.updated"), "{}", page.text);
    assert!(page.text.contains(">pending<"), "{}", page.text);
    let message = after(&page.text, &format!("href=\"{base}/messages/")).to_owned();
    let shown = c.get(&format!("{base}/messages/{message}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.text.contains("Attempts (1)"), "{}", shown.text);
    assert!(shown.text.contains("<td>500</td>"), "{}", shown.text);

    // Replayed: sent again now, and delivered.
    let p = c
        .post(
            &format!("{base}/messages/{message}/replay"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert_eq!(
        p.location.as_deref(),
        Some(format!("{base}/messages/{message}").as_str())
    );
    drain(&c).await;
    let shown = c.get(&format!("{base}/messages/{message}")).await;
    assert!(shown.text.contains("Attempts (2)"), "{}", shown.text);
    assert!(shown.text.contains("<td>204</td>"), "{}", shown.text);
    assert!(shown.text.contains(">delivered<"), "{}", shown.text);
    assert_eq!(
        c.audited(id, "webhook_message.replayed").await[0]["surface"],
        "console"
    );
    let got = receiver.deliveries("console").await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|d| d["verified"] == true), "{got:?}");

    // A test event: the page says what came back.
    let p = c
        .post(
            &format!("{base}/test"),
            &[("csrf", &page.csrf()), ("eventType", "member.added")],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert!(p.text.contains("answered 204"), "{}", p.text);

    // Edited: the URL and the events, as the API's update; a bad URL is refused next to its
    // field, with what was sent kept, and changes nothing.
    let p = c
        .post(
            &format!("{base}/edit"),
            &[
                ("csrf", &page.csrf()),
                ("url", "not a url"),
                ("description", "changed"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert!(
        p.text.contains("aria-describedby=\"edit-url-error\""),
        "{}",
        p.text
    );
    assert!(p.text.contains("value=\"not a url\""), "{}", p.text);
    let listed = endpoints(&c, &format!("/api/organizations/{id}/webhooks")).await;
    assert_eq!(listed[0]["description"], "billing sync", "unchanged");
    let url2 = receiver.url("console2");
    let p = c
        .post(
            &format!("{base}/edit"),
            &[
                ("csrf", &page.csrf()),
                ("url", &url2),
                ("description", "billing sync, moved"),
                ("eventType", "organization.updated"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let listed = endpoints(&c, &format!("/api/organizations/{id}/webhooks")).await;
    assert_eq!(listed[0]["url"], url2.as_str());
    assert_eq!(listed[0]["eventTypes"], json!(["organization.updated"]));
    assert_eq!(
        c.audited(id, "webhook_endpoint.updated").await[0]["surface"],
        "console"
    );

    // Rotated: a new secret shown once, and deliveries signed with it and the old one.
    let p = c
        .post(&format!("{base}/rotate"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert!(p.text.contains("New signing secret"), "{}", p.text);
    let rotated = after(&p.text, "id=\"secret\" type=\"text\" readonly value=\"").to_owned();
    assert!(
        rotated.starts_with("whsec_") && rotated != secret,
        "{rotated}"
    );
    receiver
        .configure(
            "console2",
            json!({"secrets": [secret, rotated], "status": 204}),
        )
        .await;
    c.api(
        Method::PATCH,
        &format!("/api/organizations/{id}"),
        None,
        Some(json!({"name": "Hooked Thrice"})),
    )
    .await;
    drain(&c).await;
    let got = receiver.deliveries("console2").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0]["verified"], true,
        "signed with both secrets: {got:?}"
    );
    assert_eq!(
        c.audited(id, "webhook_endpoint.secret_rotated").await[0]["surface"],
        "console"
    );

    // Switched off, then on.
    let p = c
        .post(&format!("{base}/disable"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let listed = endpoints(&c, &format!("/api/organizations/{id}/webhooks")).await;
    assert_eq!(listed[0]["disabled"], true);
    assert!(c.get(&base).await.text.contains(">Enable<"));
    c.post(&format!("{base}/enable"), &[("csrf", &page.csrf())])
        .await;
    let listed = endpoints(&c, &format!("/api/organizations/{id}/webhooks")).await;
    assert_eq!(listed[0]["disabled"], false);

    // Removal needs its box ticked.
    let p = c
        .post(&format!("{base}/delete"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert_eq!(
        endpoints(&c, &format!("/api/organizations/{id}/webhooks"))
            .await
            .len(),
        1
    );
    let p = c
        .post(
            &format!("{base}/delete"),
            &[("csrf", &page.csrf()), ("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert!(endpoints(&c, &format!("/api/organizations/{id}/webhooks"))
        .await
        .is_empty());
    assert_eq!(c.get(&base).await.status, StatusCode::NOT_FOUND);
}

async fn a_bad_endpoint_is_refused_next_to_its_fields_and_nothing_is_made(c: Console) {
    let org = c.org("Picky").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let csrf = c.csrf(&format!("/console/organizations/{id}")).await;
    let entries = c.audit_count(id).await;
    // Each: the fields sent, the id of the message next to the field, and what is kept.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 3] = [
        (&[("url", "not a url")], "endpoint-url-error", "not a url"),
        (&[("url", "")], "endpoint-url-error", ""),
        (
            &[
                ("url", "http://127.0.0.1:9/h"),
                ("eventType", "nothing.happened"),
            ],
            "endpoint-events-error",
            "http://127.0.0.1:9/h",
        ),
    ];
    for (fields, error_id, kept) in cases {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let p: Page = c
            .post(&format!("/console/organizations/{id}/webhooks"), &form)
            .await;
        assert_eq!(
            p.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{fields:?}: {}",
            p.text
        );
        assert!(
            p.text.contains(&format!("aria-describedby=\"{error_id}\"")),
            "{fields:?}: {}",
            p.text
        );
        assert!(p.text.contains(&format!("id=\"{error_id}\"")), "{}", p.text);
        assert!(
            p.text.contains(&format!("value=\"{kept}\"")),
            "what was sent is kept: {}",
            p.text
        );
    }
    assert!(endpoints(&c, &format!("/api/organizations/{id}/webhooks"))
        .await
        .is_empty());
    assert_eq!(c.audit_count(id).await, entries, "nothing audited");
}

async fn the_platform_has_endpoints_of_its_own(c: Console) {
    c.sign_in_with_key().await;
    let list = c.get("/console/organizations").await;
    assert!(list.text.contains("href=\"/console/webhooks\""));
    let page = c.get("/console/webhooks").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("No endpoint yet."));
    let made = c
        .post(
            "/console/webhooks",
            &[("csrf", &page.csrf()), ("url", "http://127.0.0.1:9/all")],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    assert_eq!(made.text.matches("whsec_").count(), 1, "{}", made.text);
    let listed = endpoints(&c, "/api/admin/webhooks").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["eventTypes"], json!([]), "every event");
    let endpoint = listed[0]["id"].as_str().unwrap();
    let page = c.get("/console/webhooks").await;
    assert!(page.text.contains("every event"), "{}", page.text);
    let shown = c.get(&format!("/console/webhooks/{endpoint}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.text.contains("http://127.0.0.1:9/all"));
    assert!(shown.text.contains("No message yet."));
    // The platform's endpoint is not an organization's.
    let org = c.org("Elsewhere").await;
    let other = c
        .get(&format!(
            "/console/organizations/{}/webhooks/{endpoint}",
            org["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

async fn a_viewer_and_a_stranger_manage_no_webhooks(c: Console) {
    let org = c.org("Watched").await;
    let id = org["id"].as_str().unwrap();
    let theirs = c.org("Theirs").await;
    let their_id = theirs["id"].as_str().unwrap();
    let (status, their_endpoint) = c
        .api(
            Method::POST,
            &format!("/api/organizations/{their_id}/webhooks"),
            None,
            Some(json!({"url": "http://127.0.0.1:9/theirs"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{their_endpoint}");
    let their_endpoint = their_endpoint["id"].as_str().unwrap();
    c.person(id, "viewer@example.com", &[5]).await;
    c.sign_in_with_password("viewer@example.com").await;

    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains("Webhook endpoints"), "{}", page.text);
    let p = c
        .post(
            &format!("/console/organizations/{id}/webhooks"),
            &[("csrf", &page.csrf()), ("url", "http://127.0.0.1:9/h")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.text);
    assert!(endpoints(&c, &format!("/api/organizations/{id}/webhooks"))
        .await
        .is_empty());

    // Another organization's endpoint, and the platform's page: out of reach.
    let base = format!("/console/organizations/{their_id}/webhooks/{their_endpoint}");
    assert_eq!(c.get(&base).await.status, StatusCode::NOT_FOUND);
    for action in ["disable", "rotate", "edit"] {
        let p = c
            .post(
                &format!("{base}/{action}"),
                &[("csrf", &page.csrf()), ("url", "http://127.0.0.1:9/mine")],
            )
            .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(
        endpoints(&c, &format!("/api/organizations/{their_id}/webhooks")).await[0]["disabled"],
        false
    );
    assert_eq!(
        c.get("/console/webhooks").await.status,
        StatusCode::FORBIDDEN
    );
    let p = c
        .post(
            "/console/webhooks",
            &[("csrf", &page.csrf()), ("url", "http://127.0.0.1:9/h")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(endpoints(&c, "/api/admin/webhooks").await.is_empty());
}
