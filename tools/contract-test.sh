#!/usr/bin/env bash
# Contract test: schemathesis 4 against Orgbase, once per kind of credential (the platform key,
# an organization key, a member's session), each time on a fresh server with fresh fixtures.
# Fails when any run reports a failure or an error.
#
#   tools/contract-test.sh [BIN]        BIN: the orgbase binary (default target/debug/orgbase)
#
# Needs python3 with localstripe and schemathesis 4 (`st`; both pip-installed if missing), curl
# and jq. About 4-5 minutes with the defaults. Environment, all optional:
#   CONTRACT_MAX_TIME    seconds per schemathesis run (default 75)
#   CONTRACT_WORKERS     schemathesis workers (default 1: with 2, CPython 3.11 sometimes
#                        fails inside Hypothesis, gh-106905)
#   CONTRACT_RUNS        which runs, among "platform org session" (default all three)
#   CONTRACT_REPORT_DIR  where each run's log, JSON report and server log go
#                        (default: a new /tmp/contract-report.XXXXXX)
#
# Fixtures are made through the API before each run; their ids reach tools/schemathesis.toml as
# CT_* variables. Each run has its own server so that what a run changes or deletes cannot leak
# into the next, and so that the integer ids (members, roles) are the same every time: the
# config names those as numbers, which the script checks.
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$repo/target/debug/orgbase}
[[ $bin = /* ]] || bin=$PWD/$bin
max_time=${CONTRACT_MAX_TIME:-75}
workers=${CONTRACT_WORKERS:-1}
runs=${CONTRACT_RUNS:-platform org session}
reports=${CONTRACT_REPORT_DIR:-$(mktemp -d /tmp/contract-report.XXXXXX)}
config=$repo/tools/schemathesis.toml

for tool in curl jq python3; do
  command -v "$tool" >/dev/null || { echo "contract-test: $tool is missing" >&2; exit 2; }
done
# The schemathesis release this test was written against: a newer one may generate differently.
SCHEMATHESIS=schemathesis==4.32.5
pip_install() {
  python3 -m pip install --quiet "$1" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "$1" \
    || { echo "contract-test: cannot install $1 (python3 -m pip install '$1')" >&2; exit 2; }
}
[[ $(st --version 2>/dev/null) = *" 4.32.5"* ]] || pip_install "$SCHEMATHESIS"
python3 -c 'import localstripe' 2>/dev/null || pip_install localstripe
[[ -x $bin ]] || { echo "contract-test: no binary at $bin" >&2; exit 2; }
mkdir -p "$reports"

tmp=$(mktemp -d /tmp/contract-test.XXXXXX)
standin_pid= server_pid=
cleanup() {
  local rc=$?
  for pid in $server_pid $standin_pid; do kill "$pid" 2>/dev/null || true; done
  for pid in $server_pid $standin_pid; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
fail() { echo "contract-test: $*" >&2; exit 1; }

# --- 1. The Stripe stand-in (shared by the runs), and a fresh server per run ---------------------
cp "$bin" "$tmp/orgbase"
sport=$(free_port)
python3 "$repo/tools/stripe-standin.py" "$sport" >"$tmp/stripe.log" 2>&1 &
standin_pid=$!
stripe=http://127.0.0.1:$sport
for _ in $(seq 40); do curl -s -o /dev/null "$stripe/v1/plans" -u sk_test_standin: && break; sleep 0.25; done
curl -fsS -o /dev/null "$stripe/v1/plans" -u sk_test_standin: || fail "the Stripe stand-in did not start: $(tail -5 "$tmp/stripe.log")"
curl -fsS -o /dev/null -u sk_test_standin: "$stripe/v1/plans" -d id=price_pro -d amount=2900 \
  -d currency=usd -d interval=month -d 'product[name]=Pro'

# start_server RUN: a server working in $tmp/RUN (SQLite file and mail-outbox/ there); sets
# $base, $platform_key, $server_pid.
start_server() {
  mkdir "$tmp/$1"
  cd "$tmp/$1"
  local port
  port=$(free_port)
  platform_key=$(python3 -c 'import secrets, string; a = string.ascii_letters + string.digits; print("".join(secrets.choice(a) for _ in range(40)))')
  # Webhooks may go to 127.0.0.1: the fixtures' endpoints point at a closed port there.
  ORGBASE_STRIPE_API_BASE=$stripe ORGBASE_STRIPE_SECRET_KEY=sk_test_standin \
    ORGBASE_STRIPE_WEBHOOK_SECRET=whsec_standin ORGBASE_BOOTSTRAP_KEY=$platform_key \
    ORGBASE_WEBHOOK_ALLOW_PRIVATE=true \
    "$tmp/orgbase" serve --listen "127.0.0.1:$port" >server.log 2>&1 &
  server_pid=$!
  base=http://127.0.0.1:$port
  for _ in $(seq 120); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$base/readyz") = 200 ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || fail "the server stopped: $(tail -5 server.log)"
    sleep 0.25
  done
  fail "/readyz never answered 200"
}
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# --- 2. Fixtures, through the API ---------------------------------------------------------------
JSON="Content-Type: application/json"

# api METHOD PATH [BODY] [AUTH]: the answer's body; fails, showing the answer, on an HTTP error.
api() {
  local method=$1 path=$2 body=${3:-} auth=${4-Authorization: Bearer $platform_key} out code
  out=$(curl -sS -X "$method" "$base$path" ${auth:+-H "$auth"} ${body:+-H "$JSON" -d "$body"} -w '\n%{http_code}')
  code=${out##*$'\n'}
  [[ $code = 2* ]] || fail "fixture $method $path answered $code: ${out%$'\n'*}"
  printf '%s\n' "${out%$'\n'*}"
}

# invite ORG EMAIL ROLE: prints the invitation's id, a space and its token, which goes only by
# mail (the outbox file addressed to EMAIL).
invite() {
  local id token
  id=$(api POST "/api/organizations/$1/invite" "{\"email\":\"$2\",\"name\":\"Contract\",\"roles\":[$3]}" | jq -r .data.id)
  token=$(grep -lE "^To: (.*<)?$2>?"$'\r'"?$" mail-outbox/*.eml | xargs grep -ho 'invite/obi_[A-Za-z0-9_-]*' \
    | tail -1 | cut -d/ -f2)
  [[ -n $token ]] || fail "no invitation mail for $2"
  echo "$id $token"
}

# member ORG EMAIL ROLE: someone invited who accepted; prints the member id.
password="contract horse battery"
member() {
  local out
  out=$(invite "$1" "$2" "$3")
  api POST "/api/organizations/invite/${out#* }/accept" \
    "{\"password\":\"$password\",\"password_confirmation\":\"$password\"}" '' | jq -r .data.memberId
}
login() {
  api POST /api/auth/login "{\"email\":\"$1\",\"password\":\"$password\"}" '' | jq -r .token
}

# expect NAME VALUE WANTED: the config names some integer ids as numbers; check they hold.
expect() {
  [[ $2 = "$3" ]] || fail "fixture $1 got id $2, but tools/schemathesis.toml expects $3"
}

# fixtures RUN: what the run's requests aim at, exported as CT_* (see tools/schemathesis.toml).
fixtures() {
  local run=$1 out victim_org
  # A public plan billed through Stripe (the stand-in knows its price), for checkouts; the
  # stand-in sends its webhooks to this run's server.
  api POST /api/admin/plans '{"id":"pro","name":"Pro","price":2900,"currency":"USD","interval":"month",
    "public":true,"provider":"stripe","providerPriceId":"price_pro"}' >/dev/null
  curl -fsS -o /dev/null "$stripe/_config/webhooks/orgbase" -d "url=$base/api/billing/webhooks/stripe" \
    -d secret=whsec_standin

  CT_ORG=$(api POST /api/organizations "{\"name\":\"Contract $run\",\"countryCode\":\"US\"}" | jq -r .id)
  # Rate limits stay on, the organization's set to the most: the runs send far more than its
  # plan's 5 a second, and a 429 would hide what each operation answers.
  api PATCH "/api/organizations/$CT_ORG" '{"rateLimit":100000}' >/dev/null
  # Three members: the one whose session the session run uses (admin), one that PUT may change
  # and one that DELETE may remove.
  CT_MEMBER_EMAIL=member-$run@example.com
  expect member "$(member "$CT_ORG" "$CT_MEMBER_EMAIL" 2)" 1
  expect member-put "$(member "$CT_ORG" "put-$run@example.com" 3)" 2
  expect member-del "$(member "$CT_ORG" "del-$run@example.com" 3)" 3
  CT_SESSION=$(login "$CT_MEMBER_EMAIL")
  # POST /api/auth/logout ends the session it is sent with: it gets one of its own.
  CT_LOGOUT_SESSION=$(login "$CT_MEMBER_EMAIL")
  CT_ORG_KEY=$(api POST "/api/organizations/$CT_ORG/api-keys" '{"name":"contract","roles":[2]}' | jq -r .key)
  CT_KEY_DEL=$(api POST "/api/organizations/$CT_ORG/api-keys" '{"name":"victim","roles":[5]}' | jq -r .id)
  expect role "$(api POST "/api/organizations/$CT_ORG/roles" '{"name":"support","permissions":["org:read","members:read"]}' | jq -r .id)" 100
  expect role-del "$(api POST "/api/organizations/$CT_ORG/roles" '{"name":"victim","permissions":["org:read"]}' | jq -r .id)" 101
  CT_WORKSPACE=$(api POST "/api/organizations/$CT_ORG/workspaces" '{"name":"Support"}' | jq -r .id)
  CT_WORKSPACE_DEL=$(api POST "/api/organizations/$CT_ORG/workspaces" '{"name":"Victim"}' | jq -r .id)
  out=$(invite "$CT_ORG" "pending-$run@example.com" 3); CT_INVITATION=${out%% *}
  out=$(invite "$CT_ORG" "revoke-$run@example.com" 3); CT_INVITATION_DEL=${out%% *}
  out=$(invite "$CT_ORG" "accept-$run@example.com" 3); CT_INVITE_TOKEN=${out#* }
  CT_PLAN=basic
  api POST /api/admin/plans '{"id":"basic","name":"Basic","price":100}' >/dev/null
  CT_PLAN_DEL=victim
  api POST /api/admin/plans '{"id":"victim","name":"Victim","price":100}' >/dev/null
  # Money in the wallet, so that charges can succeed.
  api POST "/api/admin/organizations/$CT_ORG/credit" '{"amount":100000,"reason":"contract"}' >/dev/null

  # A partner with a key, and a customer of it, for the partner settings API.
  CT_PARTNER=$(api POST /api/organizations '{"name":"Reseller","countryCode":"US","type":"partner"}' | jq -r .id)
  CT_PARTNER_KEY=$(api POST /api/admin/api-keys \
    "{\"name\":\"reseller\",\"kind\":\"partner\",\"organizationId\":\"$CT_PARTNER\"}" | jq -r .key)
  CT_CHILD=$(api POST /api/organizations '{"name":"Customer","countryCode":"US"}' \
    "Authorization: Bearer $CT_PARTNER_KEY" | jq -r .id)
  # That API takes its key in the query: the platform key, else the partner's.
  if [[ $run = platform ]]; then CT_COMPAT_TOKEN=$platform_key; else CT_COMPAT_TOKEN=$CT_PARTNER_KEY; fi

  # A 1x1 PNG as the partner's avatar, for GET /avatars/{organizationId}/{file} (public).
  echo iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg== \
    | base64 -d >logo.png
  CT_AVATAR_FILE=$(curl -fsS "$base/api/organizations/$CT_PARTNER/upload-avatar" \
    -H "Authorization: Bearer $platform_key" -F file=@logo.png | jq -r .data.avatarUrl)
  CT_AVATAR_FILE=${CT_AVATAR_FILE##*/}

  # DELETE /api/organizations/{organizationId}: the platform run deletes (and restores) a victim;
  # the other runs aim at their own organization, which they may not delete (403).
  victim_org=$(api POST /api/organizations '{"name":"Victim","countryCode":"US"}' | jq -r .id)
  if [[ $run = platform ]]; then CT_ORG_DEL=$victim_org; else CT_ORG_DEL=$CT_ORG; fi

  # Webhook endpoints (to a closed port: deliveries fail and wait for their retry), one of the
  # organization's and one of the platform's, each with a victim for DELETE; a change so that
  # each has a delivery (the server's worker fans it out within moments).
  CT_WEBHOOK=$(api POST "/api/organizations/$CT_ORG/webhooks" '{"url":"http://127.0.0.1:9/hook"}' | jq -r .id)
  CT_WEBHOOK_DEL=$(api POST "/api/organizations/$CT_ORG/webhooks" '{"url":"http://127.0.0.1:9/victim"}' | jq -r .id)
  CT_ADMIN_WEBHOOK=$(api POST /api/admin/webhooks '{"url":"http://127.0.0.1:9/platform"}' | jq -r .id)
  CT_ADMIN_WEBHOOK_DEL=$(api POST /api/admin/webhooks '{"url":"http://127.0.0.1:9/victim"}' | jq -r .id)
  api PATCH "/api/organizations/$CT_ORG" '{"name":"Contract hooks"}' >/dev/null
  CT_MESSAGE= CT_ADMIN_MESSAGE=
  for _ in $(seq 40); do
    CT_MESSAGE=$(api GET "/api/organizations/$CT_ORG/webhooks/$CT_WEBHOOK/messages" | jq -r '.data[0].id // empty')
    CT_ADMIN_MESSAGE=$(api GET "/api/admin/webhooks/$CT_ADMIN_WEBHOOK/messages" | jq -r '.data[0].id // empty')
    [[ -n $CT_MESSAGE && -n $CT_ADMIN_MESSAGE ]] && break
    sleep 0.25
  done
  [[ -n $CT_MESSAGE && -n $CT_ADMIN_MESSAGE ]] || fail "the webhook worker made no delivery of the fixtures' change"

  export CT_WEBHOOK CT_WEBHOOK_DEL CT_ADMIN_WEBHOOK CT_ADMIN_WEBHOOK_DEL CT_MESSAGE CT_ADMIN_MESSAGE
  export CT_ORG CT_MEMBER_EMAIL CT_SESSION CT_LOGOUT_SESSION CT_ORG_KEY CT_KEY_DEL CT_WORKSPACE \
    CT_WORKSPACE_DEL CT_INVITATION CT_INVITATION_DEL CT_INVITE_TOKEN CT_PLAN CT_PLAN_DEL CT_PARTNER \
    CT_PARTNER_KEY CT_CHILD CT_COMPAT_TOKEN CT_AVATAR_FILE CT_ORG_DEL
}

# --- 3. A schemathesis hook: answers no document can rule out ----------------------------------
# positive_data_acceptance (ST202) wants a schema-valid request accepted. Some are refused for
# what the server holds, not for their shape: an id that names nothing (a parent, a plan, a role
# drawn at random), a plan billed through Stripe without a subscription, or an Idempotency-Key
# that schemathesis drew again for another request (422 idempotency_key_reused, as the
# Idempotency-Key draft asks). Those failures are dropped; every other failure stands.
# Schemathesis prints one example per operation, check and status; the hook also writes every
# failure, kept or dropped, as one line to $reports/RUN.all, so that all the distinct causes are
# in one place.
cat >"$tmp/hooks.py" <<'PY'
import email, email.policy, json, os, threading
import schemathesis

STATE_CODES = {"invalid_parent", "unknown_plan", "plan_not_offered", "not_subscribed",
               "unknown_role", "unknown_member", "unknown_workspace", "not_partner",
               # A plan's provider and price id, judged with what the plan has stored.
               "provider_pair",
               # A partner has no parent: a stored parent or type counts (the document rules
               # out both in one request).
               "partner_parent",
               # A cursor is opaque: only one the server gave out names a place in a list.
               "invalid_cursor",
               # What the wallet holds, not the request's form.
               "insufficient_funds",
               # Enabling SMS needs a brand and a campaign id, stored or in the request.
               "sms_setup_incomplete",
               # A webhook URL's host must resolve (to a public address): the network decides,
               # and this sandbox resolves no generated name.
               "unreachable_url",
               # The organization's stored status: a suspended one's own callers may read only.
               "organization_suspended"}
# Field refusals that depend on what is stored, on one operation: a suspension needs a reason
# unless the organization is suspended already with one (and then its reason cannot go).
STATE_FIELDS = {("PATCH /api/organizations/{organizationId}", "statusReason:required")}
lock = threading.Lock()

def causes(response):
    """The problem's own code, or each failing field with its code (`errors[]`)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None, []
    if not isinstance(body, dict):
        return None, []
    errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    fields = [f"{e.get('field')}:{e.get('code') or e.get('error')}" for e in errors]
    return body.get("code"), fields

def partial_success(case, response):
    """The partner settings API applies each setting on its own (seed 000): a body with one
    invalid setting and one valid answers 200, the invalid one named in `failedSettings`."""
    if case.operation.label != "POST /api/v2/updateOrganization" or response.status_code != 200:
        return False
    try:
        return bool(json.loads(response.content).get("failedSettings"))
    except (ValueError, AttributeError):
        return False

def valid_upload_sent(case, response):
    """Schemathesis draws a form that breaks the avatar upload's schema (no `file`, another
    part), then its multipart encoder sends one of its sample images as `file` anyway: a valid
    upload, rightly accepted. Judged by the bytes that went out, which must be exactly one
    non-empty part named `file`."""
    if case.operation.label != "POST /api/organizations/{organization}/upload-avatar" \
            or response.status_code != 200:
        return False
    request = response.request
    body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
    message = email.message_from_bytes(
        f"Content-Type: {request.headers.get('Content-Type', '')}\r\n\r\n".encode() + body,
        policy=email.policy.HTTP)
    if not message.is_multipart():
        return False
    parts = list(message.iter_parts())
    return len(parts) == 1 and parts[0].get_param("name", header="content-disposition") == "file" \
        and bool(parts[0].get_payload(decode=True))

@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    code, fields = causes(response)
    state = failure.code == "ST202" and (
        code in STATE_CODES
        or response.status_code == 422 and (
            code == "idempotency_key_reused"
            or (fields and all(f.split(":")[-1] in STATE_CODES
                               or (case.operation.label, f) in STATE_FIELDS for f in fields)))) \
        or failure.code == "ST201" and (partial_success(case, response)
                                        or valid_upload_sent(case, response))
    line = (f"{'dropped' if state else 'FAILED'}\t{case.operation.label}\t{failure.code}\t"
            f"{response.status_code}\t{code or ''} {' '.join(fields)}\n")
    with lock, open(os.environ["CT_FAILURE_LOG"], "a") as log:
        log.write(line)
    return not state
PY
export SCHEMATHESIS_HOOKS=$tmp/hooks.py

# --- 4. The runs -------------------------------------------------------------------------------
status=0
summary=()
for run in $runs; do
  start_server "$run"
  fixtures "$run"
  case $run in
    platform) token=$platform_key ;;
    org) token=$CT_ORG_KEY ;;
    session) token=$CT_SESSION ;;
    *) fail "unknown run $run (CONTRACT_RUNS: platform, org, session)" ;;
  esac
  log=$reports/$run.txt
  export CT_FAILURE_LOG=$reports/$run.all
  : >"$CT_FAILURE_LOG"
  echo "== $run: st run, at most ${max_time}s ..."
  # Run from the server's directory: schemathesis keeps its caches (.hypothesis/, .schemathesis/)
  # in the working directory, which the cleanup removes.
  # --continue-on-failure: an operation keeps being tested after its first failure, so that one
  # run finds all the causes (RUN.all), not only the first.
  # ensure_resource_availability (ST302) is left out: it expects a resource a stateful step just
  # created to be found by the next step, but the config pins the path ids (organizationId,
  # workspaceId, the DELETE victims...), which replace the ids the steps pass along; every
  # ST302 it raised here was about a pinned id, not the server. Command-line checks override
  # the config, so it cannot be turned off per operation there.
  set +e
  st --config-file "$config" run "$base/openapi.json" \
    --checks all --exclude-checks ensure_resource_availability \
    --phases examples,coverage,fuzzing,stateful \
    -H "Authorization: Bearer $token" -w "$workers" --max-time "$max_time" --continue-on-failure \
    --report json --report-json-path "$reports/$run.json" --no-color >"$log" 2>&1
  rc=$?
  set -e
  stop_server
  cp server.log "$reports/$run.server.log"

  # One line per failure schemathesis printed: the operation, the check, the status it got.
  awk '
    /^=+ FAILURES =+$/ { on = 1; next }
    /^=+ [A-Z]+ =+$/ { on = 0 }
    on && /^_+ .* _+$/ { op = $0; gsub(/^_+ | _+$/, "", op) }
    on && /^- ST[0-9]+ / { check = substr($0, 3) }
    on && /^\[[0-9]+\]/ && check != "" { printf "%-62s %s %s\n", op, check, $1; check = "" }
  ' "$log" | sort -u >"$reports/$run.failures"
  totals=$(grep -E '^=+ .* in [0-9.]+s =+$' "$log" | tail -1 | sed -E 's/^=+ | =+$//g')
  summary+=("$run: ${totals:-no summary line, see $log} (exit $rc)")
  echo "   ${summary[-1]}; $(grep -c '^dropped' "$CT_FAILURE_LOG" || true) state-dependent refusals dropped"
  sed 's/^/     /' "$reports/$run.failures"
  # Errors are schemathesis' own troubles (or the server's answer it cannot read): name them.
  sed -n '/^=* ERRORS =*$/,/^=* [A-Z]* =*$/p' "$log" | grep -E '^_+ .* _+$' -A3 | grep -vE '^(--)?$' \
    | sed -E 's/^_+ | _+$//g; s/^/     error: /' | head -12 || true
  [[ $rc -eq 0 ]] || status=1
done

echo
echo "== contract test: $([[ $status -eq 0 ]] && echo passed || echo FAILED)"
printf '   %s\n' "${summary[@]}"
echo "   logs, JSON reports and server logs: $reports"
exit "$status"
