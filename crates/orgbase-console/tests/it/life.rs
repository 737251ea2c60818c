//! Deleting (soft) and restoring an organization from its page.
use reqwest::StatusCode;

use crate::Console;

crate::console_tests!(
    the_platform_deletes_after_confirming_and_restores,
    a_member_deletes_nothing,
);

async fn the_platform_deletes_after_confirming_and_restores(c: Console) {
    let org = c.org("Short Lived").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    let delete = format!("/console/organizations/{id}/life/delete");
    let p = c.post(&delete, &[("csrf", &page.csrf())]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
    assert!(p.text.contains("id=\"delete-error\""));
    assert_eq!(c.stored(id).await["version"], org["version"], "unchanged");

    let p = c
        .post(&delete, &[("csrf", &page.csrf()), ("confirm", "yes")])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(page.text.contains(">Restore</button>"), "{}", page.text);
    assert!(
        page.text.contains("organization_deleted"),
        "the access check says so"
    );
    assert_eq!(
        c.audited(id, "organization.deleted").await[0]["surface"],
        "console"
    );

    let p = c
        .post(
            &format!("/console/organizations/{id}/life/restore"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert!(c.stored(id).await["deletedAt"].is_null());
    assert_eq!(
        c.audited(id, "organization.restored").await[0]["surface"],
        "console"
    );
}

async fn a_member_deletes_nothing(c: Console) {
    let org = c.org("Kept").await;
    let id = org["id"].as_str().unwrap();
    c.person(id, "member@example.com", &[3]).await;
    c.sign_in_with_password("member@example.com").await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(!page.text.contains("/life/"), "{}", page.text);
    for action in ["delete", "restore"] {
        let p = c
            .post(
                &format!("/console/organizations/{id}/life/{action}"),
                &[("csrf", &page.csrf()), ("confirm", "yes")],
            )
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{action}: {}", p.text);
    }
    assert_eq!(c.stored(id).await["version"], org["version"]);
}
