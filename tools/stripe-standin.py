#!/usr/bin/env python3
# A local Stripe stand-in, for trying Orgbase's billing offline and for its tests.
#
#   python3 -m pip install localstripe
#   python3 tools/stripe-standin.py 12111
#
# It runs localstripe (customers, prices, subscriptions, invoices and signed webhooks, kept in
# memory) with four changes: it binds 127.0.0.1 only; it keeps its state in memory only; it takes
# a subscription item's `price` as today's Stripe API names it (and `proration_behavior`); and it
# answers checkout sessions, which localstripe lacks (recorded, listed at
# GET /_test/checkout_sessions). Any `sk_test_…` key is accepted. Register where its webhooks go:
#
#   curl -X POST http://127.0.0.1:12111/_config/webhooks/orgbase \
#     -d url=http://127.0.0.1:8080/api/billing/webhooks/stripe -d secret=whsec_standin
import sys
from aiohttp import web
import localstripe.resources as r
from localstripe.errors import UserError
from localstripe.server import app

r.Store.dump_to_disk = lambda self: None

def prices_as_plans(items):
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and 'price' in item:
                if 'plan' in item:
                    raise UserError(400, 'You may only specify one of these parameters: plan, price.')
                item['plan'] = item.pop('price')

create = r.Subscription.__init__
def subscription_init(self, *args, items=None, **kwargs):
    prices_as_plans(items)
    create(self, *args, items=items, **kwargs)
r.Subscription.__init__ = subscription_init

update = r.Subscription._update
def subscription_update(self, items=None, proration_behavior=None, **kwargs):
    if proration_behavior not in (None, 'create_prorations', 'none', 'always_invoice'):
        raise UserError(400, 'Invalid proration_behavior')
    prices_as_plans(items)
    return update(self, items=items, **kwargs)
r.Subscription._update = subscription_update

# Checkout sessions, which localstripe lacks: recorded as sent, answered as Stripe does, the same
# session again for the same Idempotency-Key; listed at /_test/checkout_sessions.
import secrets
checkout_sessions = []
by_key = {}

@web.middleware
async def checkout(request, handler):
    if request.method == 'POST' and request.path == '/v1/checkout/sessions':
        key = request.headers.get('Idempotency-Key')
        if key in by_key:
            return web.json_response(by_key[key])
        form = await request.post()
        sid = 'cs_test_' + secrets.token_hex(12)
        session = {
            'id': sid, 'object': 'checkout.session', 'livemode': False,
            'url': 'https://checkout.stripe.test/c/pay/' + sid,
            'mode': form.get('mode'), 'customer': form.get('customer'),
            'client_reference_id': form.get('client_reference_id'),
            'success_url': form.get('success_url'), 'cancel_url': form.get('cancel_url'),
            'metadata': {k[len('metadata['):-1]: v for k, v in form.items()
                         if k.startswith('metadata[')},
            'price': form.get('line_items[0][price]'),
            'subscription_metadata': {k[len('subscription_data[metadata]['):-1]: v
                                      for k, v in form.items()
                                      if k.startswith('subscription_data[metadata][')},
            'idempotency_key': key,
        }
        checkout_sessions.append(session)
        if key:
            by_key[key] = session
        return web.json_response(session)
    if request.method == 'GET' and request.path == '/_test/checkout_sessions':
        return web.json_response(checkout_sessions)
    return await handler(request)

app.middlewares.insert(0, checkout)

web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), access_log=None, print=None)
