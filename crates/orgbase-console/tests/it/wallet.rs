//! The wallet on the organization page: the balances, the ledger, and the platform's credit.
use reqwest::{Method, StatusCode};

use crate::Console;

crate::console_tests!(
    the_platform_credits_a_wallet_once_per_form,
    a_bad_amount_is_refused_next_to_its_field_and_credits_nothing,
    only_the_platform_may_credit,
);

fn key_of(page: &crate::Page) -> String {
    let at = page
        .text
        .find("name=\"key\" value=\"")
        .expect("a credit form");
    let rest = &page.text[at + "name=\"key\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

async fn balance(c: &Console, id: &str) -> i64 {
    let (status, w) = c
        .api(
            Method::GET,
            &format!("/api/organizations/{id}/wallet"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{w}");
    w["balance"].as_i64().unwrap()
}

async fn the_platform_credits_a_wallet_once_per_form(c: Console) {
    let org = c.org("Wallet Co").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(
        page.text.contains("id=\"wallet-balance\">0 USD"),
        "{}",
        page.text
    );
    let (csrf, key) = (page.csrf(), key_of(&page));
    let form = [
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        ("amount", "1250"),
        ("reason", "Top-up by phone"),
    ];
    let p = c
        .post(&format!("/console/organizations/{id}/credit"), &form)
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    // The same form sent again (a double click, a reload): credited once.
    let p = c
        .post(&format!("/console/organizations/{id}/credit"), &form)
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert_eq!(balance(&c, id).await, 1250);
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert!(
        page.text.contains("id=\"wallet-balance\">1250 USD"),
        "{}",
        page.text
    );
    assert!(page.text.contains("Top-up by phone"));
    assert_ne!(key_of(&page), key, "a new form, a new key");
    let credited = c.audited(id, "wallet.credited").await;
    assert_eq!(credited.len(), 1, "{credited:?}");
    assert_eq!(credited[0]["surface"], "console");
}

async fn a_bad_amount_is_refused_next_to_its_field_and_credits_nothing(c: Console) {
    let org = c.org("Careful Co").await;
    let id = org["id"].as_str().unwrap();
    c.sign_in_with_key().await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    for amount in ["12.50", "0", "-5", "", "lots"] {
        let p = c
            .post(
                &format!("/console/organizations/{id}/credit"),
                &[
                    ("csrf", &page.csrf()),
                    ("key", &key_of(&page)),
                    ("amount", amount),
                ],
            )
            .await;
        assert_eq!(
            p.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{amount:?}: {}",
            p.text
        );
        assert!(p.text.contains("id=\"amount-error\""), "{amount:?}");
        assert!(
            p.text.contains(&format!("value=\"{amount}\"")),
            "the amount is kept"
        );
    }
    assert_eq!(balance(&c, id).await, 0);
}

async fn only_the_platform_may_credit(c: Console) {
    let org = c.org("Owned Wallet").await;
    let id = org["id"].as_str().unwrap();
    c.person(id, "admin@example.com", &[2]).await;
    c.sign_in_with_password("admin@example.com").await;
    let page = c.get(&format!("/console/organizations/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("Wallet"), "an admin reads the wallet");
    assert!(!page.text.contains("/credit\""), "but has no credit form");
    let p = c
        .post(
            &format!("/console/organizations/{id}/credit"),
            &[("csrf", &page.csrf()), ("key", "k-1"), ("amount", "100")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.text);
    assert_eq!(balance(&c, id).await, 0);
}
