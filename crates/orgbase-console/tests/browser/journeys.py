"""Browser journeys through the console: Playwright drives Debian's chromium, headless.

    python3 journeys.py JOURNEY BASE_URL SHOTS_DIR ARGS_JSON

Run by the console's tests (tests/it/browser.rs), which start the server and make the data each
journey needs through the API; ARGS_JSON carries what they made (keys, ids, e-mail addresses).
Each step saves a screenshot to SHOTS_DIR as JOURNEY-NN-step.png. Exits non-zero, with the
failing step, on the first failure.
"""

import email
import email.policy
import json
import os
import re
import sys

from playwright.sync_api import expect, sync_playwright

JOURNEY, BASE, SHOTS, ARGS = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
CHROMIUM = os.environ.get("ORGBASE_CHROMIUM", "/usr/bin/chromium")
step_no = 0


def shot(page, name):
    global step_no
    step_no += 1
    page.screenshot(path=os.path.join(SHOTS, f"{JOURNEY}-{step_no:02d}-{name}.png"), full_page=True)


def sign_in_with_key(page):
    page.goto(f"{BASE}/console")
    expect(page).to_have_url(f"{BASE}/console/sign-in")
    shot(page, "sign-in")
    page.get_by_label("Platform or partner key", exact=True).fill(ARGS["key"])
    page.get_by_role("button", name="Sign in with the key").click()
    expect(page).to_have_url(f"{BASE}/console/organizations")


def sign_in_with_password(page, email, password):
    page.goto(f"{BASE}/console/sign-in")
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(f"{BASE}/console/organizations")


def suspend(page):
    """Journey 1: an operator finds an organization by name and suspends it with a reason; the
    access check says organization_suspended, and the audit timeline shows the change."""
    sign_in_with_key(page)
    shot(page, "organizations")
    page.get_by_label("Name or slug", exact=True).fill(ARGS["name"][:8])
    page.get_by_role("button", name="Search").click()
    shot(page, "search")
    page.get_by_role("link", name=ARGS["name"]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(ARGS["name"])
    shot(page, "organization")
    page.get_by_label("Reason for the suspension", exact=True).fill("Chargeback under review")
    page.get_by_role("button", name="Suspend").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("suspended")
    access = page.get_by_role("region", name="Access check")
    expect(access).to_contain_text("organization_suspended")
    audit = page.get_by_role("region", name="Audit log")
    first = audit.get_by_role("row").nth(1)
    expect(first).to_contain_text("organization.updated")
    expect(first).to_contain_text("console")
    expect(first).to_contain_text("suspended")
    shot(page, "suspended")


def csrf(page):
    """Journey 5: a POST without its CSRF token gets 403 and changes nothing."""
    sign_in_with_key(page)
    page.goto(f"{BASE}/console/organizations/{ARGS['id']}")
    # The browser's own cookies go with it, as a forged cross-site form's would; the token not.
    answer = page.request.post(
        f"{BASE}/console/organizations/{ARGS['id']}/status",
        form={"status": "suspended", "reason": "forged"},
        max_redirects=0,
    )
    assert answer.status == 403, f"expected 403, got {answer.status}"
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_contain_text("active")
    shot(page, "unchanged")


def viewer(page):
    """Journey 4: a viewer (role 5) sees no action they may not take, and a forged POST of one
    gets 403 or 404 and changes nothing."""
    sign_in_with_password(page, ARGS["email"], ARGS["password"])
    page.get_by_role("link", name=ARGS["name"]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(ARGS["name"])
    expect(page.get_by_role("button", name="Suspend")).to_have_count(0)
    expect(page.get_by_role("region", name="Status")).to_have_count(0)
    shot(page, "viewer")
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{BASE}/console/organizations/{ARGS['id']}/status",
        form={"csrf": token, "status": "suspended", "reason": "forged"},
        max_redirects=0,
    )
    assert answer.status in (403, 404), f"expected 403 or 404, got {answer.status}"
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_contain_text("active")


def newest_link(outbox):
    """The invitation link in the newest e-mail of the outbox folder."""
    newest = max((os.path.join(outbox, f) for f in os.listdir(outbox)), key=os.path.getmtime)
    with open(newest, "rb") as f:
        message = email.message_from_binary_file(f, policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"https?://\S+/invite/\S+", text).group(0)


def invite(page):
    """Journey 2: a person signs in and invites a member, and sees the invitation; the member
    opens the e-mailed link, sets a password on the landing page, is signed in, and appears in
    the member list with their role."""
    sign_in_with_password(page, ARGS["email"], ARGS["password"])
    page.get_by_role("link", name=ARGS["name"]).click()
    page.get_by_label("E-mail to invite", exact=True).fill("newcomer@example.com")
    page.get_by_label("Name (optional)", exact=True).fill("Nia Newcomer")
    page.get_by_label("Role", exact=True).select_option(label="member")
    page.get_by_role("button", name="Invite").click()
    invitations = page.get_by_role("region", name="Invitations")
    expect(invitations.get_by_role("row", name="newcomer@example.com")).to_contain_text("member")
    shot(page, "invited")

    link = newest_link(ARGS["outbox"])
    newcomer = page.context.browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    newcomer.goto(link)
    expect(newcomer.get_by_role("heading", level=1)).to_have_text(f"Join {ARGS['name']}")
    expect(newcomer.get_by_role("main")).to_contain_text(ARGS["email"])
    shot(newcomer, "landing")
    newcomer.get_by_label("Choose a password (8 characters or more)", exact=True).fill("a-long-password")
    newcomer.get_by_label("The password again", exact=True).fill("a-long-password")
    newcomer.get_by_role("button", name="Set the password and join").click()
    expect(newcomer.get_by_role("banner")).to_contain_text("Signed in as newcomer@example.com")
    members = newcomer.get_by_role("region", name=re.compile("^Members"))
    expect(members.get_by_role("row", name=re.compile("newcomer@example.com"))).to_contain_text("member")
    shot(newcomer, "joined")


def credit(page):
    """Journey 3: an operator credits a wallet and sees the ledger entry and the balance."""
    sign_in_with_key(page)
    page.goto(f"{BASE}/console/organizations/{ARGS['id']}")
    wallet = page.get_by_role("region", name="Wallet")
    expect(wallet).to_contain_text("0 USD")
    page.get_by_label("Amount to credit, in minor units (cents)", exact=True).fill("5000")
    page.get_by_label("Reason (optional)", exact=True).fill("Prepaid by bank transfer")
    page.get_by_role("button", name="Credit").click()
    wallet = page.get_by_role("region", name="Wallet")
    expect(wallet).to_contain_text("5000 USD")
    expect(wallet.get_by_role("row", name=re.compile("Prepaid by bank transfer"))).to_contain_text("credit")
    shot(page, "credited")


JOURNEYS = {
    "suspend": suspend,
    "csrf": csrf,
    "viewer": viewer,
    "invite": invite,
    "credit": credit,
}


def main():
    os.makedirs(SHOTS, exist_ok=True)
    for old in os.listdir(SHOTS):
        if old.startswith(f"{JOURNEY}-") and old.endswith(".png"):
            os.remove(os.path.join(SHOTS, old))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(10_000)
        try:
            JOURNEYS[JOURNEY](page)
        except Exception:
            shot(page, "failed")
            raise
        finally:
            browser.close()
    print(f"journey {JOURNEY}: passed ({step_no} screenshots in {SHOTS})")


if __name__ == "__main__":
    main()
