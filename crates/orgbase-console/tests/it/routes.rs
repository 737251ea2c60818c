//! Every form the console takes, posted without a credential and with another organization's:
//! each is refused (to the sign-in page; 404, or 403 where only the platform may) and changes
//! nothing.
use reqwest::StatusCode;

use crate::Console;

crate::console_tests!(every_form_refuses_a_stranger_and_changes_nothing);

/// Each form's path under an organization, its fields, and what a person of another
/// organization gets: 404, or 403 where the platform alone may (the service asks that first).
/// A form: its path under the organization, its fields, and what a stranger gets.
type Form = (
    &'static str,
    &'static [(&'static str, &'static str)],
    StatusCode,
);

const FORMS: [Form; 18] = [
    (
        "status",
        &[("status", "suspended"), ("reason", "x")],
        StatusCode::NOT_FOUND,
    ),
    (
        "credit",
        &[("amount", "100"), ("key", "k")],
        StatusCode::FORBIDDEN,
    ),
    (
        "invite",
        &[("email", "x@example.com"), ("role", "3")],
        StatusCode::NOT_FOUND,
    ),
    (
        "invitations/01a24d4d-0983-76a1-b175-e10c6d96d2a6/resend",
        &[],
        StatusCode::NOT_FOUND,
    ),
    (
        "keys",
        &[("name", "k"), ("role", "5")],
        StatusCode::NOT_FOUND,
    ),
    (
        "keys/01a24d4d-0983-76a1-b175-e10c6d96d2a6/revoke",
        &[],
        StatusCode::NOT_FOUND,
    ),
    ("members/1/role", &[("role", "5")], StatusCode::NOT_FOUND),
    ("life/delete", &[("confirm", "yes")], StatusCode::NOT_FOUND),
    ("life/restore", &[], StatusCode::FORBIDDEN),
    ("plan/plan", &[("plan", "free")], StatusCode::NOT_FOUND),
    ("plan/offer", &[("plan", "")], StatusCode::NOT_FOUND),
    (
        "owner",
        &[("member", "1"), ("confirm", "yes")],
        StatusCode::NOT_FOUND,
    ),
    (
        "webhooks",
        &[("url", "https://hooks.example.com/h")],
        StatusCode::NOT_FOUND,
    ),
    (
        "webhooks/01a24d4d-0983-76a1-b175-e10c6d96d2a6/disable",
        &[],
        StatusCode::NOT_FOUND,
    ),
    (
        "webhooks/01a24d4d-0983-76a1-b175-e10c6d96d2a6/rotate",
        &[],
        StatusCode::NOT_FOUND,
    ),
    (
        "webhooks/01a24d4d-0983-76a1-b175-e10c6d96d2a6/edit",
        &[("url", "https://hooks.example.com/h")],
        StatusCode::NOT_FOUND,
    ),
    (
        "webhooks/01a24d4d-0983-76a1-b175-e10c6d96d2a6/delete",
        &[("confirm", "yes")],
        StatusCode::NOT_FOUND,
    ),
    (
        "webhooks/01a24d4d-0983-76a1-b175-e10c6d96d2a6/messages/msg_1/replay",
        &[],
        StatusCode::NOT_FOUND,
    ),
];

async fn every_form_refuses_a_stranger_and_changes_nothing(c: Console) {
    let mine = c.org("Mine").await;
    let theirs = c.org("Theirs").await;
    let (mine, their_id) = (mine["id"].as_str().unwrap(), theirs["id"].as_str().unwrap());
    c.person(mine, "stranger@example.com", &[2]).await;
    let entries = c.audit_count(their_id).await;
    let csrf = c.csrf("/console/sign-in").await;

    // Not signed in: to the sign-in page, whatever the form holds.
    for (path, fields, _) in FORMS {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let p = c
            .post(&format!("/console/organizations/{their_id}/{path}"), &form)
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(p.location.as_deref(), Some("/console/sign-in"), "{path}");
    }

    // An admin of another organization: theirs is out of reach.
    c.sign_in_with_password("stranger@example.com").await;
    for (path, fields, refused) in FORMS {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let p = c
            .post(&format!("/console/organizations/{their_id}/{path}"), &form)
            .await;
        assert_eq!(p.status, refused, "{path}: {}", p.text);
    }
    let page = c.get(&format!("/console/organizations/{their_id}")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);

    let now = c.stored(their_id).await;
    assert_eq!(now["version"], theirs["version"], "unchanged");
    assert_eq!(c.audit_count(their_id).await, entries, "nothing audited");
    let (_, wallet) = c
        .api(
            reqwest::Method::GET,
            &format!("/api/organizations/{their_id}/wallet"),
            None,
            None,
        )
        .await;
    assert_eq!(wallet["balance"], 0);
}
