//! Billing end to end: a private plan offered through the partner settings API, checkout at a
//! local Stripe (localstripe, which keeps real customers and subscriptions), signed webhooks
//! delivered out of order and twice, and a plan change that goes to Stripe first; on both
//! databases.
use orgbase_api::billing::Billing;
use orgbase_api::ApiConfig;
use orgbase_billing::testing::{LocalStripe, WEBHOOK_SECRET};
use orgbase_billing::{sign_webhook, StripeClient};
use orgbase_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

use crate::{Answer, App};

crate::db_tests!(sqlite, postgres;
    offer_checkout_webhooks_and_a_plan_change,
    webhooks_with_bad_signatures_change_nothing,
    checkout_takes_only_plans_this_organization_may_buy,
);

async fn start(db: TestDb, stripe: &LocalStripe) -> App {
    let client = StripeClient::new(stripe.config()).unwrap();
    App::start_with_billing(
        db,
        ApiConfig::default(),
        Billing::default().with(Arc::new(client)),
    )
    .await
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Posts `event` to the webhook route, signed with `secret` at time `t`.
async fn deliver_signed(app: &App, event: &Value, secret: &str, t: i64) -> Answer {
    let payload = serde_json::to_vec(event).unwrap();
    let signature = sign_webhook(secret, t, &payload);
    let res = app
        .http
        .post(format!("{}/api/billing/webhooks/stripe", app.base))
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(payload)
        .send()
        .await
        .unwrap();
    answer(res).await
}

async fn deliver(app: &App, event: &Value) -> Answer {
    deliver_signed(app, event, WEBHOOK_SECRET, unix_now()).await
}

async fn answer(res: reqwest::Response) -> Answer {
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id, "object": "event", "type": kind, "created": created, "livemode": false,
        "api_version": "2024-06-20", "pending_webhooks": 1,
        "data": {"object": object},
    })
}

fn subscription(id: &str, customer: &str, status: &str, price: &str, org: &str) -> Value {
    json!({
        "id": id, "object": "subscription", "customer": customer, "status": status,
        "created": 1_700_000_000, "current_period_end": 1_900_000_000,
        "cancel_at_period_end": false,
        "metadata": {"organization_id": org},
        "items": {"object": "list", "data": [
            {"id": "si_1", "object": "subscription_item", "price": {"id": price}, "plan": {"id": price}}
        ]},
    })
}

fn invoice(id: &str, customer: &str, sub: &str) -> Value {
    json!({"id": id, "object": "invoice", "customer": customer, "subscription": sub,
           "status": "open", "created": 1_700_000_000})
}

async fn org(app: &App, id: &str) -> Value {
    let a = app.get(&format!("/api/organizations/{id}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body
}

async fn settings(app: &App, key: &str, org: &str, body: Value) -> Answer {
    app.as_(
        None,
        Method::POST,
        &format!("/api/v2/updateOrganization?token={key}&targetOrganizationId={org}"),
        Some(body),
    )
    .await
}

async fn properties(app: &App, org: &str) -> Value {
    let p = app
        .http
        .patch(format!("{}/v1/orgs/{org}/properties", app.base))
        .header("authorization", &app.key)
        .json(&json!({"updates": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(p.status(), StatusCode::OK);
    p.json().await.unwrap()
}

async fn plan(app: &App, id: &str, price: i64, public: bool, price_id: &str) {
    let a = app
        .post(
            "/api/admin/plans",
            json!({"id": id, "name": id, "price": price, "currency": "usd", "interval": "month",
                   "rateLimit": 20, "public": public, "provider": "stripe",
                   "providerPriceId": price_id}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

async fn offer_checkout_webhooks_and_a_plan_change(db: TestDb) {
    let stripe = LocalStripe::start();
    let app = start(db, &stripe).await;
    stripe.create_price("pro_monthly", 4900, "usd").await;
    stripe.create_price("team_monthly", 9900, "usd").await;
    plan(&app, "pro", 4900, false, "pro_monthly").await;
    plan(&app, "team", 9900, true, "team_monthly").await;
    let (_, partner_key) = crate::partners::partner(&app, "Billing Partner").await;
    let child = crate::partners::child(&app, &partner_key, "Billing Child").await;
    let id = child["id"].as_str().unwrap().to_owned();

    // A Stripe plan cannot be set before the customer subscribed; it is offered instead.
    let a = settings(&app, &partner_key, &id, json!({"productPlanId": "pro"})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    let a = settings(
        &app,
        &partner_key,
        &id,
        json!({"offeredProductPlanId": "pro"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);

    // Checkout, by the partner: one customer for the organization, reused the second time.
    let body = json!({"planId": "pro", "successUrl": "https://app.example.com/done",
                      "cancelUrl": "https://app.example.com/billing"});
    let path = format!("/api/organizations/{id}/billing/checkout");
    let first = app
        .as_(Some(&partner_key), Method::POST, &path, Some(body.clone()))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let session_id = first.body["sessionId"].as_str().unwrap().to_owned();
    assert!(first.body["url"].as_str().unwrap().starts_with("https://"));
    let second = app
        .as_(Some(&partner_key), Method::POST, &path, Some(body))
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    let sessions = stripe.checkout_sessions().await;
    let s = &sessions[0];
    assert_eq!(s["id"], session_id.as_str());
    assert_eq!(s["mode"], "subscription");
    assert_eq!(s["client_reference_id"], id.as_str());
    assert_eq!(s["metadata"]["organization_id"], id.as_str());
    assert_eq!(s["metadata"]["plan_id"], "pro");
    assert_eq!(s["price"], "pro_monthly");
    let customer = s["customer"].as_str().unwrap().to_owned();
    assert!(customer.starts_with("cus_"), "{customer}");
    assert_eq!(sessions.last().unwrap()["customer"], customer.as_str());
    assert!(s["idempotency_key"].as_str().is_some());
    // Nothing changes before Stripe says so.
    assert_eq!(org(&app, &id).await["productPlanId"], "starter");

    // The customer completes checkout: Stripe has a subscription, and says so.
    stripe.add_card(&customer).await;
    let sub = stripe
        .create_subscription(&customer, "pro_monthly", &[("organization_id", &id)])
        .await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    let t0 = unix_now() - 100;
    let completed = event(
        "evt_checkout",
        "checkout.session.completed",
        t0,
        json!({"id": session_id, "object": "checkout.session", "mode": "subscription",
               "customer": customer, "subscription": sub_id, "client_reference_id": id,
               "metadata": {"organization_id": id, "plan_id": "pro"},
               "payment_status": "paid"}),
    );
    let a = deliver(&app, &completed).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["duplicate"], false);
    let o = org(&app, &id).await;
    assert_eq!(o["productPlanId"], "pro");
    assert_eq!(o["offeredProductPlanId"], Value::Null);
    assert_eq!(o["premium"], true);
    let version = o["version"].clone();
    // A second checkout would make a second subscription: refused while one is live.
    let a = app
        .as_(
            Some(&partner_key),
            Method::POST,
            &path,
            Some(
                json!({"planId": "team", "successUrl": "https://a.example/ok",
                        "cancelUrl": "https://a.example/no"}),
            ),
        )
        .await;
    a.assert_problem(409, "already_subscribed");
    // A redelivery does nothing.
    let a = deliver(&app, &completed).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["duplicate"], true);
    assert_eq!(org(&app, &id).await["version"], version);
    let b = app.get(&format!("/api/organizations/{id}/billing")).await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.text);
    assert_eq!(b.body["planId"], "pro");
    assert_eq!(b.body["provider"], "stripe");
    assert_eq!(b.body["subscriptionId"], sub_id.as_str());
    assert_eq!(b.body["status"], "active");
    assert_eq!(b.body["overdue"], false);

    // Stripe's `created` for the subscription shares the checkout's second and says
    // `incomplete`; delivered after the checkout, it does not undo it.
    let created = event(
        "evt_created",
        "customer.subscription.created",
        t0,
        subscription(&sub_id, &customer, "incomplete", "pro_monthly", &id),
    );
    assert_eq!(deliver(&app, &created).await.status, StatusCode::OK);
    let b = app.get(&format!("/api/organizations/{id}/billing")).await;
    assert_eq!(b.body["status"], "active", "{}", b.text);

    // An update older than what was applied (delivered late) does not roll anything back.
    let stale = event(
        "evt_stale",
        "customer.subscription.updated",
        t0 - 50,
        subscription(&sub_id, &customer, "canceled", "pro_monthly", &id),
    );
    assert_eq!(deliver(&app, &stale).await.status, StatusCode::OK);
    assert_eq!(org(&app, &id).await["productPlanId"], "pro");

    // A failed payment: overdue, here and in the properties API; an older "paid" delivered
    // late does not clear it; a newer one does.
    let failed = event(
        "evt_failed",
        "invoice.payment_failed",
        t0 + 20,
        invoice("in_1", &customer, &sub_id),
    );
    assert_eq!(deliver(&app, &failed).await.status, StatusCode::OK);
    assert_eq!(org(&app, &id).await["billingOverdue"], true);
    assert_eq!(
        properties(&app, &id).await["data"]["is_stripe_overdue"],
        true
    );
    let late_paid = event(
        "evt_paid_old",
        "invoice.paid",
        t0 + 10,
        invoice("in_0", &customer, &sub_id),
    );
    assert_eq!(deliver(&app, &late_paid).await.status, StatusCode::OK);
    assert_eq!(org(&app, &id).await["billingOverdue"], true);
    let paid = event(
        "evt_paid",
        "invoice.paid",
        t0 + 30,
        invoice("in_2", &customer, &sub_id),
    );
    assert_eq!(deliver(&app, &paid).await.status, StatusCode::OK);
    assert_eq!(org(&app, &id).await["billingOverdue"], false);
    assert_eq!(
        properties(&app, &id).await["data"]["is_stripe_overdue"],
        false
    );
    assert_eq!(properties(&app, &id).await["data"]["org_plan"], "pro");

    // A plan change goes to Stripe first, and is committed here once Stripe agreed.
    let a = settings(&app, &partner_key, &id, json!({"productPlanId": "team"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(org(&app, &id).await["productPlanId"], "team");
    let at_stripe = stripe
        .call(Method::GET, &format!("/v1/subscriptions/{sub_id}"), &[])
        .await;
    let item = &at_stripe["items"]["data"][0];
    let price = item["price"]["id"].as_str().or(item["plan"]["id"].as_str());
    assert_eq!(price, Some("team_monthly"), "{at_stripe}");

    // A plan not billed through Stripe would leave the subscription charging: refused.
    let a = settings(&app, &partner_key, &id, json!({"productPlanId": "starter"})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    let a = app
        .patch(
            &format!("/api/organizations/{id}"),
            json!({"productPlanId": "starter"}),
        )
        .await;
    a.assert_problem(422, "validation_failed");
    assert_eq!(org(&app, &id).await["productPlanId"], "team");

    // The native PATCH does the same (platform or partner): Stripe first, then here.
    let a = app
        .patch(
            &format!("/api/organizations/{id}"),
            json!({"productPlanId": "pro"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["productPlanId"], "pro");
    let at_stripe = stripe
        .call(Method::GET, &format!("/v1/subscriptions/{sub_id}"), &[])
        .await;
    let item = &at_stripe["items"]["data"][0];
    let price = item["price"]["id"].as_str().or(item["plan"]["id"].as_str());
    assert_eq!(price, Some("pro_monthly"), "{at_stripe}");
    let a = app
        .patch(
            &format!("/api/organizations/{id}"),
            json!({"productPlanId": "nope"}),
        )
        .await;
    a.assert_problem(422, "validation_failed");
    let a = settings(&app, &partner_key, &id, json!({"productPlanId": "team"})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);

    // Stripe refuses a price it does not know: that setting fails, nothing changes here.
    plan(&app, "ghost", 100, true, "no_such_price").await;
    let a = settings(&app, &partner_key, &id, json!({"productPlanId": "ghost"})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(org(&app, &id).await["productPlanId"], "team");
    let before = org(&app, &id).await;
    let a = app
        .patch(
            &format!("/api/organizations/{id}"),
            json!({"productPlanId": "ghost"}),
        )
        .await;
    a.assert_problem(502, "billing_provider_error");
    assert_eq!(org(&app, &id).await, before);

    // The subscription ends: back to starter, and an update after the end revives nothing.
    let deleted = event(
        "evt_deleted",
        "customer.subscription.deleted",
        t0 + 40,
        subscription(&sub_id, &customer, "canceled", "team_monthly", &id),
    );
    assert_eq!(deliver(&app, &deleted).await.status, StatusCode::OK);
    let o = org(&app, &id).await;
    assert_eq!(o["productPlanId"], "starter");
    assert_eq!(o["premium"], false);
    let revive = event(
        "evt_revive",
        "customer.subscription.updated",
        t0 + 50,
        subscription(&sub_id, &customer, "active", "team_monthly", &id),
    );
    assert_eq!(deliver(&app, &revive).await.status, StatusCode::OK);
    assert_eq!(org(&app, &id).await["productPlanId"], "starter");
    let b = app.get(&format!("/api/organizations/{id}/billing")).await;
    assert_eq!(b.body["status"], "canceled");

    // An event of a kind we do not act on, and one for a customer we do not know: 200.
    let other = event(
        "evt_other",
        "customer.created",
        t0,
        json!({"id": "cus_x", "object": "customer"}),
    );
    assert_eq!(deliver(&app, &other).await.status, StatusCode::OK);
    let stranger = event(
        "evt_stranger",
        "invoice.paid",
        t0,
        invoice("in_9", "cus_nobody", "sub_nobody"),
    );
    assert_eq!(deliver(&app, &stranger).await.status, StatusCode::OK);

    // The audit log tells the story: who checked out, what each event changed (once, however
    // often it was delivered), and the plan changes made through the partner settings API.
    let log = app
        .get(&format!("/api/organizations/{id}/audit-log?limit=100"))
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    let entries: Vec<&Value> = log.body["data"].as_array().unwrap().iter().rev().collect();
    let by = |label: &str| -> Vec<&Value> {
        entries
            .iter()
            .copied()
            .filter(|e| {
                e["actor"]["label"]
                    .as_str()
                    .is_some_and(|l| l.contains(label))
            })
            .collect()
    };
    let checkouts: Vec<_> = entries
        .iter()
        .filter(|e| e["action"] == "billing.checkout_started")
        .collect();
    assert_eq!(checkouts.len(), 2, "{}", log.text);
    assert_eq!(checkouts[0]["actor"]["type"], "partner_key");
    assert_eq!(checkouts[0]["changes"]["planId"]["after"], "pro");
    assert_eq!(
        checkouts[0]["changes"]["customerId"]["after"],
        customer.as_str()
    );
    let completed = by("evt_checkout");
    assert_eq!(
        completed.len(),
        1,
        "one entry for two deliveries: {}",
        log.text
    );
    let e = completed[0];
    assert_eq!(e["action"], "plan.changed");
    assert_eq!(e["actor"]["type"], "billing_provider");
    assert_eq!(e["actor"]["id"], "stripe");
    assert_eq!(e["surface"], "billing_webhook");
    assert_eq!(e["changes"]["productPlanId"]["before"], "starter");
    assert_eq!(e["changes"]["productPlanId"]["after"], "pro");
    assert_eq!(e["changes"]["offeredProductPlanId"]["before"], "pro");
    assert_eq!(by("evt_failed")[0]["action"], "billing.overdue_changed");
    assert_eq!(
        by("evt_failed")[0]["changes"]["billingOverdue"]["after"],
        true
    );
    assert_eq!(
        by("evt_paid")[0]["changes"]["billingOverdue"]["after"],
        false
    );
    assert_eq!(
        by("evt_deleted")[0]["changes"]["productPlanId"]["after"],
        "starter"
    );
    // Stale and unknown events changed nothing and recorded nothing.
    for stale in [
        "evt_stale",
        "evt_paid_old",
        "evt_revive",
        "evt_other",
        "evt_stranger",
    ] {
        assert!(
            by(stale)
                .iter()
                .all(|e| e["changes"].as_object().unwrap().is_empty()),
            "{stale}: {}",
            log.text
        );
    }
    let v2: Vec<_> = entries
        .iter()
        .filter(|e| e["surface"] == "partner_settings")
        .filter(|e| !e["changes"]["productPlanId"].is_null())
        .collect();
    assert_eq!(v2.len(), 2, "{}", log.text);
    assert_eq!(v2[0]["changes"]["productPlanId"]["after"], "team");
    assert_eq!(v2[0]["actor"]["type"], "partner_key");
}

async fn webhooks_with_bad_signatures_change_nothing(db: TestDb) {
    let stripe = LocalStripe::start();
    let app = start(db, &stripe).await;
    stripe.create_price("pro_monthly", 4900, "usd").await;
    plan(&app, "pro", 4900, true, "pro_monthly").await;
    let o = app
        .org(json!({"name": "Signed", "countryCode": "US"}))
        .await;
    let id = o["id"].as_str().unwrap().to_owned();
    let failed = event(
        "evt_sig",
        "invoice.payment_failed",
        unix_now(),
        json!({"id": "in_1", "object": "invoice", "customer": "cus_1", "subscription": "sub_1",
               "metadata": {"organization_id": id}}),
    );
    let payload = serde_json::to_vec(&failed).unwrap();
    let url = format!("{}/api/billing/webhooks/stripe", app.base);
    let post = |sig: Option<String>, body: Vec<u8>| {
        let mut req = app.http.post(&url).body(body);
        if let Some(s) = sig {
            req = req.header("stripe-signature", s);
        }
        req.send()
    };
    let now = unix_now();
    let mut tampered = payload.clone();
    let n = tampered.len();
    tampered[n - 3] = b' ';
    for (what, sig, body) in [
        ("no signature", None, payload.clone()),
        ("malformed", Some("garbage".to_owned()), payload.clone()),
        (
            "wrong secret",
            Some(sign_webhook("whsec_wrong", now, &payload)),
            payload.clone(),
        ),
        (
            "stale",
            Some(sign_webhook(WEBHOOK_SECRET, now - 400, &payload)),
            payload.clone(),
        ),
        (
            "tampered body",
            Some(sign_webhook(WEBHOOK_SECRET, now, &payload)),
            tampered,
        ),
    ] {
        let a = answer(post(sig, body).await.unwrap()).await;
        a.assert_problem(400, "invalid_webhook");
        assert!(!a.text.contains(WEBHOOK_SECRET), "{what}: {}", a.text);
    }
    let after = org(&app, &id).await;
    assert_eq!(after["billingOverdue"], false);
    assert_eq!(after["version"], o["version"]);
    // The same event, properly signed, is then applied: the refusals recorded nothing.
    let a = deliver(&app, &failed).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["duplicate"], false);
    assert_eq!(org(&app, &id).await["billingOverdue"], true);

    // One event delivered eight times at once is applied once.
    let paid = event(
        "evt_many",
        "invoice.paid",
        unix_now() + 1,
        json!({"id": "in_2", "object": "invoice", "customer": "cus_1", "subscription": "sub_1",
               "metadata": {"organization_id": id}}),
    );
    let before = org(&app, &id).await["version"].as_i64().unwrap();
    let answers = futures::future::join_all((0..8).map(|_| deliver(&app, &paid))).await;
    let fresh = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK && a.body["duplicate"] == false)
        .count();
    assert!(
        answers.iter().all(|a| a.status == StatusCode::OK),
        "{answers:?}"
    );
    assert_eq!(fresh, 1, "{answers:?}");
    let after = org(&app, &id).await;
    assert_eq!(after["version"].as_i64().unwrap(), before + 1);
    assert_eq!(after["billingOverdue"], false);
}

async fn checkout_takes_only_plans_this_organization_may_buy(db: TestDb) {
    let stripe = LocalStripe::start();
    let app = start(db, &stripe).await;
    stripe.create_price("pro_monthly", 4900, "usd").await;
    plan(&app, "pro", 4900, false, "pro_monthly").await;
    plan(&app, "team", 9900, true, "team_monthly").await;
    let (id, owner) = app.owned_org("owner@billing.test").await;
    let (_, stranger) = app.owned_org("stranger@billing.test").await;
    let (viewer, _) = app.person(&id, "viewer@billing.test", &[5]).await;
    let (billing_person, _) = app.person(&id, "billing@billing.test", &[4]).await;
    let path = format!("/api/organizations/{id}/billing/checkout");
    let urls = json!({"successUrl": "https://a.example/ok", "cancelUrl": "https://a.example/no"});
    let with = |plan: &str| {
        let mut b = urls.clone();
        b["planId"] = json!(plan);
        b
    };
    for (body, field, code) in [
        (with("pro"), "planId", "plan_not_offered"),
        (with("starter"), "planId", "plan_not_billed"),
        (with("nope"), "planId", "unknown_plan"),
        (
            json!({"planId": "team", "successUrl": "javascript:alert(1)", "cancelUrl": "https://a.example/no"}),
            "successUrl",
            "invalid_url",
        ),
        (json!({"planId": "team"}), "cancelUrl", "required"),
    ] {
        let a = app
            .as_(Some(&owner), Method::POST, &path, Some(body.clone()))
            .await;
        a.assert_problem(422, "validation_failed");
        assert!(
            a.field_errors()
                .contains(&(field.to_owned(), code.to_owned())),
            "{body}: {}",
            a.text
        );
    }
    let a = app.as_(None, Method::POST, &path, Some(with("team"))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = app
        .as_(Some(&stranger), Method::POST, &path, Some(with("team")))
        .await;
    a.assert_problem(404, "not_found");
    let a = app
        .as_(Some(&viewer), Method::POST, &path, Some(with("team")))
        .await;
    a.assert_problem(403, "forbidden");
    assert!(stripe.checkout_sessions().await.is_empty());
    // Nothing was made at Stripe, nor recorded here.
    let b = app
        .as_(
            Some(&owner),
            Method::GET,
            &format!("/api/organizations/{id}/billing"),
            None,
        )
        .await;
    assert_eq!(b.body["provider"], Value::Null, "{}", b.text);

    // The owner and a person with billing:manage may.
    for who in [&owner, &billing_person] {
        let a = app
            .as_(Some(who), Method::POST, &path, Some(with("team")))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    let a = app
        .as_(
            Some(&viewer),
            Method::GET,
            &format!("/api/organizations/{id}/billing"),
            None,
        )
        .await;
    a.assert_problem(403, "forbidden");

    // The plan itself: not the owner's to set; a Stripe plan needs a subscription first.
    let org_path = format!("/api/organizations/{id}");
    let a = app
        .as_(
            Some(&owner),
            Method::PATCH,
            &org_path,
            Some(json!({"productPlanId": "team"})),
        )
        .await;
    a.assert_problem(403, "forbidden");
    let a = app.patch(&org_path, json!({"productPlanId": "team"})).await;
    a.assert_problem(422, "validation_failed");
    assert_eq!(
        a.field_errors(),
        [("productPlanId".to_owned(), "not_subscribed".to_owned())]
    );
    let a = app
        .patch(&org_path, json!({"offeredProductPlanId": "pro"}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["offeredProductPlanId"], "pro");
    let a = app
        .as_(Some(&owner), Method::POST, &path, Some(with("pro")))
        .await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "an offered plan is checked out: {}",
        a.text
    );
    let a = app
        .post(
            "/api/organizations",
            json!({"name": "Planned", "countryCode": "US", "productPlanId": "team"}),
        )
        .await;
    a.assert_problem(422, "validation_failed");
}

/// An app whose Stripe client talks to `api_base`, a public plan `team` billed there, and one
/// organization's checkout of it: (the app, the organization as created, the answer).
async fn checkout_against(api_base: String) -> (App, Value, crate::Answer) {
    let mut config = orgbase_billing::StripeConfig::new("sk_test_x".to_owned().into());
    config.api_base = api_base;
    config.retry_base_delay = std::time::Duration::from_millis(5);
    let app = App::start_with_billing(
        orgbase_store::testing::sqlite().await,
        ApiConfig::default(),
        Billing::default().with(Arc::new(StripeClient::new(config).unwrap())),
    )
    .await;
    plan(&app, "team", 9900, true, "team_monthly").await;
    let o = app
        .org(json!({"name": "Checkout", "countryCode": "US"}))
        .await;
    let id = o["id"].as_str().unwrap();
    let a = app
        .post(
            &format!("/api/organizations/{id}/billing/checkout"),
            json!({"planId": "team", "successUrl": "https://a.example/ok", "cancelUrl": "https://a.example/no"}),
        )
        .await;
    (app, o, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_is_a_502_and_changes_nothing() {
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(500).set_body_json(
                json!({"error": {"type": "api_error", "message": "Stripe is down"}}),
            ),
        )
        .mount(&server)
        .await;
    let (app, o, a) = checkout_against(server.uri()).await;
    let id = o["id"].as_str().unwrap();
    a.assert_problem(502, "billing_provider_error");
    assert!(!a.text.contains("sk_test_x"));
    let b = app.get(&format!("/api/organizations/{id}/billing")).await;
    assert_eq!(b.body["provider"], Value::Null);
    assert_eq!(org(&app, id).await["version"], o["version"]);
}

/// A provider that cannot be reached is a 502 that names no address, port or connection error:
/// those go to the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_a_502_without_internals() {
    let port = orgbase_testkit::free_port();
    let (_app, _, a) = checkout_against(format!("http://127.0.0.1:{port}")).await;
    a.assert_problem(502, "billing_provider_error");
    assert_eq!(
        a.body["detail"], "the billing provider cannot be reached",
        "{}",
        a.text
    );
    assert!(!a.text.contains(&port.to_string()), "{}", a.text);
}
