//! Inviting from the organization page, and the invitation's landing page.
use reqwest::{Method, StatusCode};

use crate::Console;

crate::console_tests!(
    an_invited_person_sets_a_password_and_is_signed_in,
    an_invitation_is_made_from_the_organization_page,
    a_used_or_unknown_invitation_says_so,
);

async fn an_invited_person_sets_a_password_and_is_signed_in(c: Console) {
    let org = c.org("Joinable").await;
    let id = org["id"].as_str().unwrap();
    let (status, body) = c
        .api(
            Method::POST,
            &format!("/api/organizations/{id}/invite"),
            None,
            Some(serde_json::json!({"email": "grace@example.com", "roles": [3]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let link = c.last_invite_link();
    assert!(
        link.starts_with(&format!("{}/invite/obi_", c.base)),
        "{link}"
    );
    let token = link.rsplit('/').next().unwrap().to_owned();

    // The e-mailed link leads to the console's page.
    let p = c.get(&link[c.base.len()..]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        p.location.as_deref(),
        Some(format!("/console/invite/{token}").as_str())
    );
    let page = c.get(&format!("/console/invite/{token}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Join Joinable"));
    assert!(page.text.contains("grace@example.com"));
    assert!(
        page.text.contains("bootstrap (an API key)"),
        "the inviter: {}",
        page.text
    );

    let path = format!("/console/invite/{token}");
    let p = c
        .post(
            &path,
            &[
                ("password", "longenough1"),
                ("password_confirmation", "longenough1"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "no CSRF token");
    let p = c
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("password", "longenough1"),
                ("password_confirmation", "other"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert!(p.text.contains("id=\"confirmation-error\""), "{}", p.text);
    let p = c
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("password", "short"),
                ("password_confirmation", "short"),
            ],
        )
        .await;
    assert!(p.text.contains("id=\"password-error\""), "{}", p.text);

    let p = c
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("password", "longenough1"),
                ("password_confirmation", "longenough1"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert_eq!(
        p.location.as_deref(),
        Some(format!("/console/organizations/{id}").as_str())
    );
    assert!(p
        .set_cookies
        .iter()
        .any(|s| s.starts_with("orgbase_console=obs_")));
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "signed in as the new member: {}",
        page.text
    );
    assert!(page.text.contains("Signed in as grace@example.com"));
    assert!(c.member(id, "grace@example.com").await.is_some());
}

async fn an_invitation_is_made_from_the_organization_page(c: Console) {
    let org = c.org("Inviting").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(page.text.contains("No pending invitation"), "{}", page.text);
    let path = format!("/console/organizations/{id}/invite");
    let p = c
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("email", "not-an-address"),
                ("role", "3"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert!(p.text.contains("id=\"invite-error\""));
    assert!(p.text.contains("value=\"not-an-address\""));
    let p = c
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("email", "linus@example.com"),
                ("role", "1"),
            ],
        )
        .await;
    assert_eq!(
        p.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the owner role is not offered"
    );
    let p = c
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("email", "linus@example.com"),
                ("name", "Linus"),
                ("role", "5"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(
        page.text
            .contains("<td>linus@example.com</td><td>viewer</td>"),
        "{}",
        page.text
    );
    assert!(c.last_invite_link().contains("/invite/obi_"));
    // Invited twice: said next to the address.
    let p = c
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("email", "linus@example.com"),
                ("role", "5"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert!(p.text.contains("id=\"invite-error\""));
    let made = c.audited(id, "invitation.created").await;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["surface"], "console");
}

async fn a_used_or_unknown_invitation_says_so(c: Console) {
    for token in ["obi_unknown", "not a token", "obi_x%2F..%2F"] {
        let p = c.get(&format!("/console/invite/{token}")).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{token}");
    }
    let p = c.get("/invite/obi_a%2Fb").await;
    assert_eq!(
        p.status,
        StatusCode::NOT_FOUND,
        "no redirect for what is no token"
    );
    let org = c.org("Used").await;
    let id = org["id"].as_str().unwrap();
    c.person(id, "used@example.com", &[3]).await;
    let token = c.last_invite_link().rsplit('/').next().unwrap().to_owned();
    let p = c.get(&format!("/console/invite/{token}")).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.text);
    assert!(p.text.contains("accepted already"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_invite_url_the_email_links_there() {
    let c = Console::start_with(orgbase_store::testing::sqlite().await, |config| {
        config.invite_url = Some("https://app.example/join?invitation={token}".into());
    })
    .await;
    let org = c.org("Elsewhere").await;
    let (status, _) = c
        .api(
            Method::POST,
            &format!("/api/organizations/{}/invite", org["id"].as_str().unwrap()),
            None,
            Some(serde_json::json!({"email": "ext@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mail = c.last_mail();
    assert!(
        mail.contains("https://app.example/join?invitation=obi_"),
        "{mail}"
    );
    assert!(!mail.contains("/invite/"), "{mail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_is_resent_with_a_new_link_and_revoked() {
    let c = Console::start(orgbase_store::testing::sqlite().await).await;
    let org = c.org("Resending").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    let p = c
        .post(
            &format!("/console/organizations/{id}/invite"),
            &[
                ("csrf", &page.csrf()),
                ("email", "ada@example.com"),
                ("role", "3"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let first = c.last_invite_link();
    let page = c.get(&format!("/console/organizations/{id}")).await;
    let at = page.text.find("/invitations/").unwrap() + "/invitations/".len();
    let inv = page.text[at..at + 36].to_owned();
    assert!(page
        .text
        .contains("aria-label=\"Resend the invitation to ada@example.com\""));

    let p = c
        .post(
            &format!("/console/organizations/{id}/invitations/{inv}/resend"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let second = c.last_invite_link();
    assert_ne!(first, second, "a new link");
    let old = c
        .get(&first[c.base.len()..].replace("/invite/", "/console/invite/"))
        .await;
    assert_eq!(
        old.status,
        StatusCode::NOT_FOUND,
        "the old link stops working"
    );

    let p = c
        .post(
            &format!("/console/organizations/{id}/invitations/{inv}/revoke"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let revoked = c
        .get(&second[c.base.len()..].replace("/invite/", "/console/invite/"))
        .await;
    assert_eq!(revoked.status, StatusCode::GONE, "{}", revoked.text);
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(page.text.contains("No pending invitation"));
    assert_eq!(
        c.audited(id, "invitation.revoked").await[0]["surface"],
        "console"
    );
    let p = c
        .post(
            &format!("/console/organizations/{id}/invitations/{inv}/explode"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "no such action");
    // Without the token, nothing.
    let p = c
        .post(
            &format!("/console/organizations/{id}/invitations/{inv}/resend"),
            &[],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
}
