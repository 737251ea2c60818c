//! The plan and the offered plan on the organization page: changed by the platform through the
//! API's update (so taking the offered plan clears the offer), an unknown plan refused next to
//! the form, and nobody else offered the forms or let through.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::Console;

crate::console_tests!(
    the_platform_offers_a_plan_and_sets_one,
    an_unknown_plan_is_refused_and_an_admin_changes_none,
);

async fn plan(c: &Console, id: &str, public: bool) {
    let (status, body) = c
        .api(
            Method::POST,
            "/api/admin/plans",
            None,
            Some(json!({"id": id, "name": id.to_uppercase(), "price": 4900, "public": public})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn the_platform_offers_a_plan_and_sets_one(c: Console) {
    plan(&c, "pro", true).await;
    plan(&c, "vip", false).await;
    let org = c.org("Growing").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(page.text.contains("id=\"plan-heading\""), "{}", page.text);
    assert!(
        page.text.contains("PRO: 4900 USD (minor units) a month"),
        "{}",
        page.text
    );
    assert!(page.text.contains("VIP"), "the platform sees every plan");

    let p = c
        .post(
            &format!("/console/organizations/{id}/plan/offer"),
            &[("csrf", &page.csrf()), ("plan", "pro")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert_eq!(c.stored(id).await["offeredProductPlanId"], "pro");
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(page.text.contains("(offered: pro)"), "{}", page.text);

    // Taking the offered plan clears the offer, as the API's update does.
    let p = c
        .post(
            &format!("/console/organizations/{id}/plan/plan"),
            &[("csrf", &page.csrf()), ("plan", "pro")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let now = c.stored(id).await;
    assert_eq!(now["productPlanId"], "pro");
    assert!(now["offeredProductPlanId"].is_null(), "{now}");
    let entry = &c.audited(id, "organization.updated").await[0];
    assert_eq!(entry["surface"], "console");
    assert_eq!(entry["changes"]["productPlanId"]["after"], "pro", "{entry}");

    // An offer withdrawn with the empty choice.
    c.post(
        &format!("/console/organizations/{id}/plan/offer"),
        &[("csrf", &page.csrf()), ("plan", "vip")],
    )
    .await;
    assert_eq!(c.stored(id).await["offeredProductPlanId"], "vip");
    let p = c
        .post(
            &format!("/console/organizations/{id}/plan/offer"),
            &[("csrf", &page.csrf()), ("plan", "")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert!(c.stored(id).await["offeredProductPlanId"].is_null());
}

async fn an_unknown_plan_is_refused_and_an_admin_changes_none(c: Console) {
    plan(&c, "pro", true).await;
    let org = c.org("Steady").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let csrf = c.csrf(&format!("/console/organizations/{id}")).await;
    let before = c.stored(id).await;
    for action in ["plan", "offer"] {
        let p = c
            .post(
                &format!("/console/organizations/{id}/plan/{action}"),
                &[("csrf", &csrf), ("plan", "no-such-plan")],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.text);
        assert!(p.text.contains("id=\"plan-error\""), "{}", p.text);
        assert!(p.text.contains("no such plan"), "{}", p.text);
    }
    let p = c
        .post(
            &format!("/console/organizations/{id}/plan/upgrade"),
            &[("csrf", &csrf), ("plan", "pro")],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert_eq!(c.stored(id).await["version"], before["version"]);

    // The organization's own admin: no plan form, and a forged one is refused.
    c.person(id, "admin@example.com", &[2]).await;
    c.sign_out().await;
    c.sign_in_with_password("admin@example.com").await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains("id=\"plan-heading\""), "{}", page.text);
    let p = c
        .post(
            &format!("/console/organizations/{id}/plan/plan"),
            &[("csrf", &page.csrf()), ("plan", "pro")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.text);
    assert_eq!(c.stored(id).await["productPlanId"], before["productPlanId"]);
}
