//! The members on the organization page: a role changed, a member removed, and what a viewer
//! may not do.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::Console;

crate::console_tests!(
    a_members_role_is_changed_and_a_member_removed,
    a_viewer_changes_no_member,
    a_members_workspaces_are_chosen_with_the_role,
    ownership_is_transferred_by_the_platform_and_not_by_an_admin,
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

async fn workspace(c: &Console, org: &str, name: &str) -> String {
    let (status, body) = c
        .api(
            Method::POST,
            &format!("/api/organizations/{org}/workspaces"),
            None,
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn a_members_workspaces_are_chosen_with_the_role(c: Console) {
    let org = c.org("Spread Out").await;
    let id = org["id"].as_str().unwrap();
    let sales = workspace(&c, id, "Sales").await;
    let support = workspace(&c, id, "Support").await;
    c.person(id, "ann@example.com", &[3]).await;
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(
        page.text
            .contains("<legend>Workspaces of ann@example.com</legend>"),
        "{}",
        page.text
    );
    let ann = member_id(&page.text, "ann@example.com");
    let path = format!("/console/organizations/{id}/members/{ann}/role");
    let workspaces_of = |m: serde_json::Value| m["workspaces"].clone();

    let p = c
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("role", "3"),
                ("workspaces", "listed"),
                ("workspace", &sales),
                ("workspace", &support),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let now = c.member(id, "ann@example.com").await.unwrap();
    let mut both = vec![sales.clone(), support.clone()];
    both.sort();
    assert_eq!(workspaces_of(now), json!(both));
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(
        page.text.contains("<td>Sales, Support</td>"),
        "{}",
        page.text
    );

    // A form without the workspaces listed keeps them; one listing none clears them.
    c.post(&path, &[("csrf", &page.csrf()), ("role", "4")])
        .await;
    let now = c.member(id, "ann@example.com").await.unwrap();
    assert_eq!(now["roles"], json!([4]));
    assert_eq!(workspaces_of(now), json!(both));
    c.post(
        &path,
        &[
            ("csrf", &page.csrf()),
            ("role", "4"),
            ("workspaces", "listed"),
        ],
    )
    .await;
    let now = c.member(id, "ann@example.com").await.unwrap();
    assert_eq!(workspaces_of(now), json!([]));

    // A workspace of no one's is refused, and nothing changes.
    let p = c
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("role", "3"),
                ("workspaces", "listed"),
                ("workspace", "01a24d4d-0983-76a1-b175-e10c6d96d2a6"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    let now = c.member(id, "ann@example.com").await.unwrap();
    assert_eq!(now["roles"], json!([4]));
}

async fn ownership_is_transferred_by_the_platform_and_not_by_an_admin(c: Console) {
    let org = c.org("Handed Over").await;
    let id = org["id"].as_str().unwrap();
    c.person(id, "ann@example.com", &[3]).await;
    c.person(id, "bob@example.com", &[2]).await;
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(page.text.contains("Transfer ownership to"), "{}", page.text);
    let ann = member_id(&page.text, "ann@example.com");
    let path = format!("/console/organizations/{id}/owner");

    // The box must be ticked.
    let p = c
        .post(&path, &[("csrf", &page.csrf()), ("member", &ann)])
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert!(
        p.text.contains("aria-describedby=\"transfer-error\""),
        "{}",
        p.text
    );
    assert_eq!(
        c.member(id, "ann@example.com").await.unwrap()["isOwner"],
        false
    );
    // An unknown member is refused next to the form.
    let p = c
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("member", "999999"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert!(p.text.contains("no such member"), "{}", p.text);

    let p = c
        .post(
            &path,
            &[("csrf", &page.csrf()), ("member", &ann), ("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let now = c.member(id, "ann@example.com").await.unwrap();
    assert_eq!(now["isOwner"], true, "{now}");
    assert_eq!(c.stored(id).await["owner"], now["userId"]);
    let entry = &c.audited(id, "organization.ownership_transferred").await[0];
    assert_eq!(entry["surface"], "console");

    // An admin is offered no transfer, and a forged one changes nothing.
    c.sign_out().await;
    c.sign_in_with_password("bob@example.com").await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(
        !page.text.contains("Transfer ownership to"),
        "{}",
        page.text
    );
    let bob = c.member(id, "bob@example.com").await.unwrap();
    let p = c
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("member", &bob["id"].to_string()),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.text);
    assert_eq!(
        c.member(id, "ann@example.com").await.unwrap()["isOwner"],
        true
    );
}
