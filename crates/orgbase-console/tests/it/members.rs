//! The members on the organization page: a role changed, a member removed, and what a viewer
//! may not do.
use reqwest::StatusCode;

use crate::Console;

crate::console_tests!(
    a_members_role_is_changed_and_a_member_removed,
    a_viewer_changes_no_member,
);

fn member_id(page: &str, email: &str) -> String {
    let label = format!("Remove {email}");
    let end = page.find(&label).expect("a remove button");
    let before = &page[..end];
    let at = before.rfind("/members/").unwrap() + "/members/".len();
    before[at..at + before[at..].find('/').unwrap()].to_owned()
}

async fn a_members_role_is_changed_and_a_member_removed(c: Console) {
    let org = c.org("Staffed").await;
    let id = org["id"].as_str().unwrap();
    c.person(id, "ann@example.com", &[3]).await;
    c.person(id, "bob@example.com", &[3]).await;
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(page.text.contains("Members (2)"), "{}", page.text);
    let ann = member_id(&page.text, "ann@example.com");
    let p = c
        .post(
            &format!("/console/organizations/{id}/members/{ann}/role"),
            &[("csrf", &page.csrf()), ("role", "5")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let now = c.member(id, "ann@example.com").await.unwrap();
    assert!(now.to_string().contains("\"roles\":[5]"), "{now}");
    assert_eq!(
        c.audited(id, "member.updated").await[0]["surface"],
        "console"
    );

    let bob = member_id(&page.text, "bob@example.com");
    let p = c
        .post(
            &format!("/console/organizations/{id}/members/{bob}/remove"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert!(c.member(id, "bob@example.com").await.is_none());
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(page.text.contains("Members (1)"), "{}", page.text);

    // The owner role is not offered, and no such action or member is a 404.
    let p = c
        .post(
            &format!("/console/organizations/{id}/members/{ann}/role"),
            &[("csrf", &page.csrf()), ("role", "1")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    for path in [format!("{ann}/explode"), "999999/remove".to_owned()] {
        let p = c
            .post(
                &format!("/console/organizations/{id}/members/{path}"),
                &[("csrf", &page.csrf())],
            )
            .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{path}");
    }
}

async fn a_viewer_changes_no_member(c: Console) {
    let org = c.org("Looked At").await;
    let id = org["id"].as_str().unwrap();
    c.person(id, "carol@example.com", &[3]).await;
    c.person(id, "viewer@example.com", &[5]).await;
    c.sign_in_with_password("viewer@example.com").await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(
        page.text.contains("carol@example.com"),
        "a viewer reads the members"
    );
    assert!(
        !page.text.contains("Remove carol@example.com"),
        "{}",
        page.text
    );
    let carol = c.member(id, "carol@example.com").await.unwrap();
    let carol_id = carol["id"]
        .as_i64()
        .or_else(|| carol["memberId"].as_i64())
        .unwrap();
    let p = c
        .post(
            &format!("/console/organizations/{id}/members/{carol_id}/remove"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.text);
    assert!(c.member(id, "carol@example.com").await.is_some());
}
