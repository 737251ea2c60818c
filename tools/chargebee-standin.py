#!/usr/bin/env python3
# A local Chargebee stand-in (API v2, Product Catalog 2.0), for trying Orgbase's billing offline
# and for its tests.
#
#   python3 -m pip install aiohttp        # localstripe already brings it
#   python3 tools/chargebee-standin.py 12112
#
# It answers, in Chargebee's documented shapes, only what Orgbase calls: form-encoded requests in
# Chargebee's bracket notation (`subscription_items[item_price_id][0]=…`), JSON answers and
# Chargebee's error object. Routes: POST /api/v2/customers, GET /api/v2/customers/{id},
# POST /api/v2/hosted_pages/checkout_new_for_items, GET /api/v2/hosted_pages/{id},
# GET /api/v2/subscriptions/{id}, POST …/{id}/update_for_items and …/{id}/cancel_for_items,
# GET /api/v2/events/{id}. It binds 127.0.0.1 only and keeps its state in memory. HTTP Basic with
# any `test_…` API key as user name is accepted. A `chargebee-idempotency-key` header (at most
# 100 characters) replays the first successful answer to the same request, with
# `chargebee-idempotency-replayed: true`. Events are POSTed as JSON, with HTTP Basic, to one
# webhook: those an API call causes in the background and in order, after the call (Chargebee's
# webhooks are asynchronous); those a /_test/ route causes before that route answers (after the
# background ones), so a test knows they arrived. There are no automatic retries. Register it:
#
#   curl -X POST http://127.0.0.1:12112/_config/webhook \
#     -d url=http://127.0.0.1:8080/api/billing/webhooks/chargebee -d username=cb -d password=secret
#
# Test controls (not Chargebee, no auth):
#   POST /_test/item_prices form id, price (cents), currency_code [, item_id, item_type=plan]
#   POST /_test/hosted_pages/{id}/complete [deliver=false]: the customer paid: a subscription
#        (active) is created, the page is `succeeded` with its content, `subscription_created` sent
#   POST /_test/events JSON {event_type, subscription_id, invoice?: {…}, subscription?: {patch},
#        source?, deliver?: true}: an event with the subscription's state (after the patch)
#   POST /_test/events/{id}/deliver     (re)delivers a stored event, at once
#   POST /_test/events/bulk JSON {events: [...]}: stores events as given, delivering none
#   POST /_test/settle                  answers once the background deliveries are done
#   GET  /_test/deliveries              [{event_id, event_type, url, status, error, at}]
#   GET|DELETE /_test/requests          [{method, path, form, user, idempotency_key}]
import asyncio
import base64
import copy
import json
import re
import secrets
import string
import sys
import time

import aiohttp
from aiohttp import web

PORT = int(sys.argv[1])
MONTH = 30 * 24 * 3600
# Chargebee's generated SDKs (from its OpenAPI spec) file invalid_state_for_request under 409.
INVALID_STATE_STATUS = 409

item_prices, customers, hosted_pages, subscriptions, events = {}, {}, {}, {}, {}
page_orders = {}  # hosted page id → what its customer buys (Chargebee shows none of it)
requests_seen, deliveries, idempotent = [], [], {}
webhook = {"url": None, "username": "", "password": ""}
queue = asyncio.Queue()
clock = {"version": 0, "invoice": 0}

def now():
    return int(time.time())

def next_version():
    """resource_version: a millisecond timestamp that grows with every change, as Chargebee's."""
    clock["version"] = max(clock["version"] + 1, int(time.time() * 1000))
    return clock["version"]

def rid(n=16):
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))

def touch(obj):
    obj["updated_at"] = now()
    obj["resource_version"] = next_version()
    return obj

class CBError(Exception):
    """Chargebee's error object. `error_code`, `error_msg` and `error_param` are its deprecated
    twins of api_error_code, message and param; `type` is optional (absent on auth failures)."""

    def __init__(self, status, code, message, type_="invalid_request", param=None):
        super().__init__(message)
        self.status = status
        self.body = {"message": message, "api_error_code": code, "error_code": code,
                     "error_msg": message, "http_status_code": status}
        if type_:
            self.body["type"] = type_
        if param:
            self.body["param"] = self.body["error_param"] = param

    def response(self):
        return web.json_response(self.body, status=self.status)

def not_found(what="resource"):
    return CBError(404, "resource_not_found", f"Sorry, we couldn't find that {what}")

# --- Chargebee's bracket notation ----------------------------------------------------------------

def nest(flat):
    """{'customer[id]': 'c', 'subscription_items[item_price_id][0]': 'p'} →
    {'customer': {'id': 'c'}, 'subscription_items': {'item_price_id': {'0': 'p'}}}"""
    root = {}
    for key, value in flat.items():
        parts = re.findall(r"[^\[\]]+", key) or [key]
        node = root
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return root

def rows(by_field):
    """Chargebee lists of objects are field-then-index: {'item_price_id': {'0': 'p'}, 'quantity':
    {'0': '2'}} → [{'item_price_id': 'p', 'quantity': '2'}]. `x[0][field]` yields nothing."""
    out = {}
    for field, by_index in (by_field if isinstance(by_field, dict) else {}).items():
        for index, value in (by_index if isinstance(by_index, dict) else {}).items():
            if index.isdigit():
                out.setdefault(int(index), {})[field] = value
    return [out[i] for i in sorted(out)]

def boolean(form, name, default=False):
    value = form.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise CBError(400, "param_wrong_value", f"{name} : invalid boolean value", param=name)
    return value == "true"

def subscription_items(form, name="subscription_items"):
    found = rows(form.get(name))
    if not found:
        param = f"{name}[item_price_id][0]"
        raise CBError(400, "param_wrong_value", f"{param} : cannot be blank", param=param)
    items = []
    for i, row in enumerate(found):
        param = f"{name}[item_price_id][{i}]"
        price = item_prices.get(row.get("item_price_id") or "")
        if not row.get("item_price_id"):
            raise CBError(400, "param_wrong_value", f"{param} : cannot be blank", param=param)
        if price is None:
            raise CBError(404, "resource_not_found",
                          f"{param} : Item price {row['item_price_id']} is not present", param=param)
        quantity = row.get("quantity", "1")
        if not quantity.isdigit() or int(quantity) < 1:
            param = f"{name}[quantity][{i}]"
            raise CBError(400, "param_wrong_value", f"{param} : invalid value", param=param)
        items.append({"item_price_id": price["id"], "item_type": price["item_type"],
                      "quantity": int(quantity), "unit_price": price["price"],
                      "amount": price["price"] * int(quantity), "free_quantity": 0,
                      "object": "subscription_item"})
    return items

# --- resources and events ----------------------------------------------------------------------

def new_customer(cid, fields):
    customer = {"id": cid, **fields, "auto_collection": "on", "net_term_days": 0,
                "allow_direct_debit": False, "created_at": now(), "taxability": "taxable",
                "pii_cleared": "active", "channel": "web", "card_status": "no_card",
                "promotional_credits": 0, "refundable_credits": 0, "excess_payments": 0,
                "unbilled_charges": 0, "deleted": False, "object": "customer"}
    customers[cid] = touch(customer)
    return customer

def new_invoice(sub, patch=None, status="paid"):
    clock["invoice"] += 1
    amount = sum(item["amount"] for item in sub["subscription_items"])
    paid = status == "paid"
    invoice = {"id": str(clock["invoice"]), "customer_id": sub["customer_id"],
               "subscription_id": sub["id"], "recurring": True, "status": status, "date": now(),
               "price_type": "tax_exclusive", "currency_code": sub["currency_code"],
               "total": amount, "sub_total": amount, "tax": 0,
               "amount_paid": amount if paid else 0, "amount_due": 0 if paid else amount,
               "first_invoice": False, "term_finalized": True, "is_gifted": False,
               "deleted": False, "object": "invoice"}
    if paid:
        invoice["paid_at"] = now()
    else:
        invoice["dunning_status"] = "in_progress"
    invoice.update(patch or {})
    return touch(invoice)

def emit(event_type, content, source):
    event = {"id": "ev_" + rid(), "occurred_at": now(), "source": source, "object": "event",
             "api_version": "v2", "event_type": event_type,
             "webhook_status": "scheduled" if webhook["url"] else "not_configured",
             "content": copy.deepcopy(content)}
    events[event["id"]] = event
    return event

async def deliver(event):
    record = {"event_id": event["id"], "event_type": event["event_type"], "url": webhook["url"],
              "status": None, "error": None, "at": time.time()}
    if not webhook["url"]:
        record["error"] = "no webhook configured (POST /_config/webhook)"
    else:
        headers = {"Content-Type": "application/json", "User-Agent": "ChargeBee"}
        if webhook["username"]:
            pair = f"{webhook['username']}:{webhook['password']}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        try:
            async with app["http"].post(webhook["url"], data=json.dumps(event),
                                        headers=headers) as answer:
                await answer.read()
                record["status"] = answer.status
        except Exception as e:  # unreachable, timed out: recorded, like a failed delivery
            record["error"] = f"{type(e).__name__}: {e}"
        event["webhook_status"] = "succeeded" if 200 <= (record["status"] or 0) < 300 else "failed"
    deliveries.append(record)
    return record

async def deliver_now(event_list):
    await queue.join()  # the background ones first, so a test sees them in order
    return [await deliver(event) for event in event_list]

async def worker(_app):
    async def run():
        while True:
            event = await queue.get()
            try:
                await deliver(event)
            finally:
                queue.task_done()
    _app["http"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20, connect=10))
    task = asyncio.create_task(run())
    yield
    task.cancel()
    await _app["http"].close()

# --- middleware: record, authenticate, idempotency ---------------------------------------------

def flat_form(multidict):
    out = {}
    for key in multidict.keys():
        values = multidict.getall(key)
        out[key] = values[0] if len(values) == 1 else list(values)
    return out

def basic_user(request):
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        return base64.b64decode(header[6:]).decode().partition(":")[0]
    except Exception:
        return None

@web.middleware
async def chargebee(request, handler):
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        form_sent = request.method != "POST" or not request.can_read_body or \
            request.content_type == "application/x-www-form-urlencoded"
        form = flat_form(await request.post() if request.method == "POST" else request.query) \
            if form_sent else {}
        user = basic_user(request)
        key = request.headers.get("chargebee-idempotency-key")
        requests_seen.append({"method": request.method, "path": request.path, "form": form,
                              "user": user, "idempotency_key": key})
        if not form_sent:
            raise CBError(400, "invalid_request", "Content-Type must be "
                          "application/x-www-form-urlencoded (stand-in's own check)")
        if not (user or "").startswith("test_"):
            raise CBError(401, "api_authentication_failed",
                          "Sorry, authentication failed. Invalid api key", type_=None)
        if key is None or request.method != "POST":
            return await handler(request)
        if len(key) > 100:
            raise CBError(400, "invalid_request", "Idempotency keys can be up to 100 characters")
        sent = (request.path, form)
        if key in idempotent:
            first = idempotent[key]
            if first["sent"] != sent:  # undocumented at Chargebee: the stand-in's own answer
                raise CBError(400, "invalid_request",
                              "The idempotency key was used with another request")
            return web.json_response(first["body"], status=first["status"],
                                     headers={"chargebee-idempotency-replayed": "true"})
        answer = await handler(request)
        if 200 <= answer.status < 300:
            idempotent[key] = {"sent": sent, "status": answer.status, "body": json.loads(answer.text)}
        return answer
    except CBError as e:
        return e.response()

async def form_of(request):
    return nest(flat_form(await request.post()))

# --- Chargebee routes --------------------------------------------------------------------------

async def create_customer(request):
    form = await form_of(request)
    cid = form.get("id") or rid()
    if len(cid) > 50:
        raise CBError(400, "param_wrong_value", "id : cannot be more than 50 characters", param="id")
    if cid in customers:
        raise CBError(400, "duplicate_entry", f"The value {cid} is already present.", param="id")
    fields = {k: form[k] for k in ("first_name", "last_name", "email", "company", "phone",
                                   "locale", "preferred_currency_code") if isinstance(form.get(k), str)}
    if "meta_data" in form:
        try:
            fields["meta_data"] = json.loads(form["meta_data"])
        except ValueError:
            raise CBError(400, "param_wrong_value", "meta_data : invalid JSON", param="meta_data")
    customer = new_customer(cid, fields)
    queue.put_nowait(emit("customer_created", {"customer": customer}, "api"))
    return web.json_response({"customer": customer})

def retrieve(store, name):
    async def handler(request):
        if request.match_info["id"] not in store:
            raise not_found()
        return web.json_response({name: store[request.match_info["id"]]})
    return handler

async def checkout_new_for_items(request):
    form = await form_of(request)
    items = subscription_items(form)
    if items[0]["item_type"] != "plan":
        raise CBError(400, "invalid_request", "The first item price must be of a plan",
                      param="subscription_items[item_price_id][0]")
    if len(form.get("pass_thru_content") or "") > 2048:
        raise CBError(400, "param_wrong_value", "pass_thru_content : too long",
                      param="pass_thru_content")
    pid = "__test__" + rid(32)
    page = {"id": pid, "type": "checkout_new", "url": f"http://127.0.0.1:{PORT}/pages/v3/{pid}/",
            "state": "created", "embed": False, "created_at": now(), "expires_at": now() + 3 * 3600,
            "object": "hosted_page"}
    if "pass_thru_content" in form:
        page["pass_thru_content"] = form["pass_thru_content"]
    hosted_pages[pid] = touch(page)
    page_orders[pid] = {"items": items, "customer": form.get("customer") or {},
                        "subscription": form.get("subscription") or {},
                        "redirect_url": form.get("redirect_url"), "cancel_url": form.get("cancel_url")}
    return web.json_response({"hosted_page": page})

def subscription_of(request):
    sub = subscriptions.get(request.match_info["id"])
    if sub is None:
        raise not_found()
    return sub

def with_customer(sub):
    return {"subscription": sub, "customer": customers[sub["customer_id"]]}

async def get_subscription(request):
    return web.json_response(with_customer(subscription_of(request)))

def refuse_if_ended(sub):
    if sub["status"] in ("cancelled", "transferred"):
        raise CBError(INVALID_STATE_STATUS, "invalid_state_for_request",
                      f"Subscription is in {sub['status']} state")

async def update_for_items(request):
    sub = subscription_of(request)
    form = await form_of(request)
    refuse_if_ended(sub)
    items = subscription_items(form)
    for name in ("replace_items_list", "prorate", "invoice_immediately", "end_of_term"):
        boolean(form, name)
    if boolean(form, "replace_items_list"):
        sub["subscription_items"] = items
    else:  # a plan-item price replaces the plan; others are added or updated
        kept = [i for i in sub["subscription_items"]
                if not any(i["item_price_id"] == n["item_price_id"] or
                           (i["item_type"] == n["item_type"] == "plan") for n in items)]
        sub["subscription_items"] = [i for i in items if i["item_type"] == "plan"] + kept + \
            [i for i in items if i["item_type"] != "plan"]
    sub["mrr"] = sum(i["amount"] for i in sub["subscription_items"])
    touch(sub)
    queue.put_nowait(emit("subscription_changed", with_customer(sub), "api"))
    return web.json_response(with_customer(sub))

async def cancel_for_items(request):
    sub = subscription_of(request)
    form = await form_of(request)
    refuse_if_ended(sub)
    option = form.get("cancel_option")
    if option not in (None, "immediately", "end_of_term", "specific_date", "end_of_billing_term"):
        raise CBError(400, "param_wrong_value", "cancel_option : invalid value", param="cancel_option")
    at_term_end = boolean(form, "end_of_term") or option in ("end_of_term", "end_of_billing_term")
    if form.get("cancel_reason_code"):
        sub["cancel_reason_code"] = form["cancel_reason_code"]
    sub.pop("next_billing_at", None)
    if at_term_end:
        sub.update(status="non_renewing", cancelled_at=sub["current_term_end"],
                   cancel_schedule_created_at=now())
        event_type = "subscription_cancellation_scheduled"
    else:
        sub.update(status="cancelled", cancelled_at=now())
        event_type = "subscription_cancelled"
    touch(sub)
    queue.put_nowait(emit(event_type, with_customer(sub), "api"))
    return web.json_response(with_customer(sub))

async def unknown(request):
    if request.path.startswith("/api/"):
        raise not_found()
    return web.json_response({"message": f"no route {request.method} {request.path}"}, status=404)

# --- test controls -----------------------------------------------------------------------------

async def params_of(request):
    if request.content_type == "application/json":
        return await request.json()
    return dict(await request.post())

def wants_delivery(params):
    return str(params.get("deliver", True)).lower() not in ("false", "0")

async def test_item_price(request):
    form = await request.post()
    pid, item_id = form["id"], form.get("item_id") or form["id"]
    item_prices[pid] = touch({"id": pid, "item_id": item_id, "name": pid, "external_name": pid,
                              "item_type": form.get("item_type", "plan"), "status": "active",
                              "pricing_model": "flat_fee", "price": int(form["price"]),
                              "currency_code": form.get("currency_code", "USD"), "period": 1,
                              "period_unit": "month", "created_at": now(), "object": "item_price"})
    return web.json_response({"item_price": item_prices[pid]})

async def test_complete(request):
    params = await params_of(request)
    pid = request.match_info["id"]
    page, order = hosted_pages.get(pid), page_orders.get(pid)
    if page is None:
        return web.json_response({"message": "no such hosted page"}, status=404)
    if page["state"] != "created":
        return web.json_response({"message": f"hosted page is {page['state']}"}, status=409)
    made = []
    customer = customers.get(order["customer"].get("id") or "")
    if customer is None:  # documented: an unknown customer[id] gets a new, generated id
        fields = {k: v for k, v in order["customer"].items() if k != "id" and isinstance(v, str)}
        customer = new_customer(rid(), fields)
        made.append(emit("customer_created", {"customer": customer}, "hosted_page"))
    customer["card_status"] = "valid"
    touch(customer)
    sid = order["subscription"].get("id") or rid()
    if sid in subscriptions:
        return web.json_response({"message": f"subscription {sid} exists"}, status=409)
    t = now()
    first_price = item_prices[order["items"][0]["item_price_id"]]
    sub = {"id": sid, "customer_id": customer["id"], "currency_code": first_price["currency_code"],
           "status": "active", "billing_period": 1, "billing_period_unit": "month",
           "current_term_start": t, "current_term_end": t + MONTH, "next_billing_at": t + MONTH,
           "created_at": t, "started_at": t, "activated_at": t,
           "has_scheduled_changes": False, "has_scheduled_advance_invoices": False,
           "subscription_items": copy.deepcopy(order["items"]), "due_invoices_count": 0,
           "mrr": sum(i["amount"] for i in order["items"]), "deleted": False, "channel": "web",
           "object": "subscription"}
    subscriptions[sid] = touch(sub)
    invoice = new_invoice(sub, {"first_invoice": True})
    page.update(state="succeeded", content={"subscription": sub, "customer": customer,
                                            "invoice": invoice})
    touch(page)
    made.append(emit("subscription_created", {**with_customer(sub), "invoice": invoice},
                     "hosted_page"))
    sent = await deliver_now(made) if wants_delivery(params) else []
    return web.json_response({"hosted_page": page, "events": made, "deliveries": sent})

async def test_event(request):
    params = await request.json()
    sub = subscriptions.get(params.get("subscription_id") or "")
    event_type = params.get("event_type")
    if sub is None or not event_type:
        return web.json_response({"message": "needs event_type and a known subscription_id"},
                                 status=404 if event_type else 400)
    if params.get("subscription"):
        sub.update(params["subscription"])
        touch(sub)
    elif event_type == "subscription_renewed":
        end = sub["current_term_end"]
        sub.update(current_term_start=end, current_term_end=end + MONTH, next_billing_at=end + MONTH)
        touch(sub)
    status = "payment_due" if event_type == "payment_failed" else "paid"
    invoice = new_invoice(sub, params.get("invoice"), status) \
        if "invoice" in params or event_type.startswith(("payment_", "invoice_")) else None
    if event_type.startswith("invoice_"):
        content = {"invoice": invoice}
    elif event_type.startswith("payment_"):
        ok = event_type != "payment_failed"
        content = {"transaction": {"id": "txn_" + rid(), "customer_id": sub["customer_id"],
                                   "subscription_id": sub["id"], "type": "payment",
                                   "status": "success" if ok else "failure", "date": now(),
                                   "amount": invoice["total"], "object": "transaction",
                                   "currency_code": invoice["currency_code"]},
                   "invoice": invoice, **with_customer(sub)}
    else:
        content = with_customer(sub)
        if invoice:
            content["invoice"] = invoice
    event = emit(event_type, content, params.get("source", "scheduled_job"))
    sent = await deliver_now([event]) if wants_delivery(params) else []
    return web.json_response({"event": event, "delivery": sent[0] if sent else None})

async def test_bulk_events(request):
    """Stores events as given (JSON {"events": [...]}), delivering none: for a benchmark that
    posts them itself and needs the events API to know them."""
    given = (await request.json()).get("events") or []
    for event in given:
        events[event["id"]] = event
    return web.json_response({"stored": len(given)})

async def test_redeliver(request):
    event = events.get(request.match_info["id"])
    if event is None:
        return web.json_response({"message": "no such event"}, status=404)
    return web.json_response((await deliver_now([event]))[0])

async def test_settle(_request):
    await queue.join()
    return web.json_response({"deliveries": len(deliveries)})

async def test_requests(request):
    if request.method == "DELETE":
        requests_seen.clear()
    return web.json_response(requests_seen)

async def test_deliveries(_request):
    return web.json_response(deliveries)

async def config_webhook(request):
    form = await request.post()
    webhook.update(url=form["url"], username=form.get("username", ""),
                   password=form.get("password", ""))
    return web.json_response({"url": webhook["url"], "username": webhook["username"]})

app = web.Application(middlewares=[chargebee])
app.cleanup_ctx.append(worker)
app.add_routes([
    web.post("/api/v2/customers", create_customer),
    web.get("/api/v2/customers/{id}", retrieve(customers, "customer")),
    web.post("/api/v2/hosted_pages/checkout_new_for_items", checkout_new_for_items),
    web.get("/api/v2/hosted_pages/{id}", retrieve(hosted_pages, "hosted_page")),
    web.get("/api/v2/subscriptions/{id}", get_subscription),
    web.post("/api/v2/subscriptions/{id}/update_for_items", update_for_items),
    web.post("/api/v2/subscriptions/{id}/cancel_for_items", cancel_for_items),
    web.get("/api/v2/events/{id}", retrieve(events, "event")),
    web.post("/_test/item_prices", test_item_price),
    web.post("/_test/hosted_pages/{id}/complete", test_complete),
    web.post("/_test/events", test_event),
    web.post("/_test/events/bulk", test_bulk_events),
    web.post("/_test/events/{id}/deliver", test_redeliver),
    web.post("/_test/settle", test_settle),
    web.get("/_test/requests", test_requests),
    web.delete("/_test/requests", test_requests),
    web.get("/_test/deliveries", test_deliveries),
    web.post("/_config/webhook", config_webhook),
    web.route("*", "/{tail:.*}", unknown),
])

web.run_app(app, host="127.0.0.1", port=PORT, access_log=None, print=None)
