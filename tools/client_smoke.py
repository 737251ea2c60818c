"""Smoke test of a Python client generated from openapi.json by openapi-python-client.

    python3 tools/client_smoke.py PACKAGE_DIR BASE_URL PLATFORM_KEY

PACKAGE_DIR holds the generated package `orgbase_client` (tools/client-smoke.sh generates it,
starts a server and runs this). Every call goes through the generated functions and models:
create an organization, invite a member, credit and charge its wallet, read its audit log. Each
answer must parse into the documented model (not a problem document); an undocumented status
raises (raise_on_unexpected_status). Exits non-zero on the first failure.
"""

import sys
import uuid

sys.path.insert(0, sys.argv[1])

from orgbase_client import AuthenticatedClient  # noqa: E402
from orgbase_client.api.audit_log import list_organization_audit_log  # noqa: E402
from orgbase_client.api.invitations import invite_member, list_invitations  # noqa: E402
from orgbase_client.api.organizations import create_organization, get_organization  # noqa: E402
from orgbase_client.api.wallet import charge_wallet, credit_wallet, get_wallet  # noqa: E402
from orgbase_client.models import (  # noqa: E402
    AuditPage,
    ChargeAnswer,
    ChargeInput,
    CreditInput,
    EnvelopeInvitationView,
    InvitationList,
    InviteInput,
    NewOrganizationInput,
    NewOrganizationInputCountryCode,
    OrganizationView,
    WalletView,
)


def expect(response, model, status):
    """The parsed answer, which must be `model` with HTTP `status`."""
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.content[:500]!r}"
    )
    assert isinstance(response.parsed, model), (
        f"expected a {model.__name__}, got {type(response.parsed).__name__}: "
        f"{response.content[:500]!r}"
    )
    return response.parsed


def main() -> None:
    base_url, key = sys.argv[2], sys.argv[3]
    client = AuthenticatedClient(base_url=base_url, token=key, raise_on_unexpected_status=True)
    with client as c:
        slug = f"smoke-{uuid.uuid4().hex[:8]}"
        org = expect(
            create_organization.sync_detailed(
                client=c,
                body=NewOrganizationInput(
                    name="Smoke Test Ltd",
                    country_code=NewOrganizationInputCountryCode.US,
                    slug=slug,
                ),
            ),
            OrganizationView,
            201,
        )
        assert org.slug == slug and org.name == "Smoke Test Ltd", org
        again = expect(get_organization.sync_detailed(org.id, client=c), OrganizationView, 200)
        assert again.id == org.id and again.version == org.version

        invited = expect(
            invite_member.sync_detailed(
                org.id,
                client=c,
                body=InviteInput(email=f"{slug}@example.com", name="Ada", roles=[3]),
            ),
            EnvelopeInvitationView,
            200,
        )
        assert invited.success, invited
        pending = expect(list_invitations.sync_detailed(org.id, client=c), InvitationList, 200)
        assert any(i.email == f"{slug}@example.com" for i in pending.data), pending

        expect(
            credit_wallet.sync_detailed(
                org.id, client=c, body=CreditInput(amount=1000, reason="smoke test")
            ),
            WalletView,
            200,
        )
        charged = expect(
            charge_wallet.sync_detailed(
                org.id,
                client=c,
                body=ChargeInput(amount=250, service="voice", reason="a call"),
                idempotency_key=f"smoke-{slug}",
            ),
            ChargeAnswer,
            200,
        )
        assert charged.success, charged
        wallet = expect(get_wallet.sync_detailed(org.id, client=c), WalletView, 200)
        assert wallet.balance == 750, wallet

        audit = expect(
            list_organization_audit_log.sync_detailed(org.id, client=c, limit=50),
            AuditPage,
            200,
        )
        actions = {e.action for e in audit.data}
        for action in ("organization.created", "invitation.created", "wallet.credited",
                       "wallet.charged"):
            assert action in actions, f"{action} not in the audit log: {sorted(actions)}"
        created = next(e for e in audit.data if e.action == "organization.created")
        assert created.changes["name"].after == "Smoke Test Ltd", created.changes.to_dict()
    print(f"client smoke test passed: organization {org.id}, {len(audit.data)} audit entries")


if __name__ == "__main__":
    main()
