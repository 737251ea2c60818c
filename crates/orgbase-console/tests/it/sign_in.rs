//! Signing in and out, the cookies, and the CSRF check.
use reqwest::StatusCode;

use crate::{browser, Console};

crate::console_tests!(
    a_visitor_is_sent_to_sign_in_and_gets_a_csrf_cookie,
    an_operator_signs_in_with_a_platform_key_and_out,
    a_wrong_or_missing_key_is_refused_next_to_its_field,
    a_form_without_its_csrf_token_is_refused_and_changes_nothing,
    a_person_signs_in_with_email_and_password_and_out,
);

async fn a_visitor_is_sent_to_sign_in_and_gets_a_csrf_cookie(c: Console) {
    for path in ["/console", "/console/organizations"] {
        let p = c.get(path).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(p.location.as_deref(), Some("/console/sign-in"), "{path}");
    }
    let p = c.get("/console/sign-in").await;
    assert_eq!(p.status, StatusCode::OK);
    let cookie = p
        .set_cookies
        .iter()
        .find(|s| s.starts_with("orgbase_csrf="))
        .expect("a CSRF cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/console"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "http: not Secure: {cookie}");
    // The form repeats the cookie's token; the page has a label for every field.
    let token = &cookie["orgbase_csrf=".len()..cookie.find(';').unwrap()];
    assert_eq!(p.csrf(), token);
    for label in ["for=\"key\"", "for=\"email\"", "for=\"password\""] {
        assert!(p.text.contains(label), "{label}");
    }
    // A second page keeps the same token.
    assert!(c.get("/console/sign-in").await.set_cookies.is_empty());
}

async fn an_operator_signs_in_with_a_platform_key_and_out(c: Console) {
    let csrf = c.csrf("/console/sign-in").await;
    let p = c
        .post("/console/sign-in/key", &[("csrf", &csrf), ("key", &c.key)])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert_eq!(p.location.as_deref(), Some("/console/organizations"));
    let cookie = p
        .set_cookies
        .iter()
        .find(|s| s.starts_with("orgbase_console="))
        .expect("the credential cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/console"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    let list = c.get("/console/organizations").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(
        list.text.contains("Signed in as platform key"),
        "{}",
        list.text
    );
    // Signed in, the sign-in page goes on to the organizations.
    let p = c.get("/console/sign-in").await;
    assert_eq!(p.location.as_deref(), Some("/console/organizations"));

    let p = c.post("/console/sign-out", &[("csrf", &list.csrf())]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/console/sign-in"));
    assert!(p
        .set_cookies
        .iter()
        .any(|s| s.starts_with("orgbase_console=;") && s.contains("Max-Age=0")));
    let p = c.get("/console/organizations").await;
    assert_eq!(p.location.as_deref(), Some("/console/sign-in"));
}

async fn a_wrong_or_missing_key_is_refused_next_to_its_field(c: Console) {
    let csrf = c.csrf("/console/sign-in").await;
    for (key, says) in [
        ("obk_not_a_key_at_all_0123456789abcdef", "not valid"),
        ("", "Enter a platform or partner key"),
    ] {
        let p = c
            .post("/console/sign-in/key", &[("csrf", &csrf), ("key", key)])
            .await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert!(p.text.contains("id=\"key-error\""), "{}", p.text);
        assert!(p.text.contains("aria-describedby=\"key-error\""));
        assert!(
            p.text.to_lowercase().contains(&says.to_lowercase()),
            "{says}: {}",
            p.text
        );
        assert!(!p
            .set_cookies
            .iter()
            .any(|s| s.starts_with("orgbase_console=")));
    }
    // An organization's key is no operator's.
    let org = c.org("Keyed").await;
    let (status, body) = c
        .api(
            reqwest::Method::POST,
            &format!(
                "/api/organizations/{}/api-keys",
                org["id"].as_str().unwrap()
            ),
            None,
            Some(serde_json::json!({"name": "k", "roles": [2]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let org_key = body["key"].as_str().unwrap();
    let p = c
        .post("/console/sign-in/key", &[("csrf", &csrf), ("key", org_key)])
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(
        p.text
            .contains("operators sign in with a platform key, partners"),
        "{}",
        p.text
    );
}

async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing(c: Console) {
    // Signing in: no token, a wrong one, and a right one without its cookie (another browser).
    let csrf = c.csrf("/console/sign-in").await;
    for form in [
        vec![("key", c.key.as_str())],
        vec![("csrf", "0000"), ("key", c.key.as_str())],
    ] {
        let p = c.post("/console/sign-in/key", &form).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(p.set_cookies.is_empty());
    }
    let stranger = browser();
    let res = stranger
        .post(format!("{}/console/sign-in/key", c.base))
        .form(&[("csrf", csrf.as_str()), ("key", c.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Signed in: a suspension without the token changes nothing.
    c.sign_in_with_key().await;
    let org = c.org("Protected").await;
    let id = org["id"].as_str().unwrap();
    let p = c
        .post(
            &format!("/console/organizations/{id}/status"),
            &[("status", "suspended"), ("reason", "forged")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.text.contains("Nothing was changed"));
    let now = c.stored(id).await;
    assert_eq!(now["status"], "active");
    assert_eq!(now["version"], org["version"]);
}

async fn a_person_signs_in_with_email_and_password_and_out(c: Console) {
    let org = c.org("People Inc").await;
    let id = org["id"].as_str().unwrap();
    c.person(id, "ada@example.com", &[3]).await;
    let csrf = c.csrf("/console/sign-in").await;
    let p = c
        .post(
            "/console/sign-in/password",
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", "wrong-password"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.text.contains("id=\"password-error\""), "{}", p.text);
    assert!(
        p.text.contains("value=\"ada@example.com\""),
        "the e-mail is kept"
    );

    let p = c
        .post(
            "/console/sign-in/password",
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", "password123"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let cookie = p
        .set_cookies
        .iter()
        .find(|s| s.starts_with("orgbase_console="))
        .unwrap()
        .clone();
    let session = cookie["orgbase_console=".len()..cookie.find(';').unwrap()].to_owned();
    assert!(session.starts_with("obs_"), "{session}");
    // A person sees their own organizations only.
    let other = c.org("Not Ada's").await;
    let list = c.get("/console/organizations").await;
    assert!(list.text.contains("People Inc"), "{}", list.text);
    assert!(!list.text.contains("Not Ada"));
    assert!(list.text.contains("Signed in as ada@example.com"));
    let p = c
        .get(&format!(
            "/console/organizations/{}",
            other["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);

    // Signing out ends the session itself: the token no longer works on the API either.
    c.post("/console/sign-out", &[("csrf", &list.csrf())]).await;
    let (status, _) = c
        .api(
            reqwest::Method::GET,
            "/api/organizations",
            Some(&session),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
