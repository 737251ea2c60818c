#!/usr/bin/env bash
# Generated-client smoke test: openapi-python-client generates a Python client from openapi.json,
# and tools/client_smoke.py drives a fresh server through it (create an organization, invite a
# member, credit and charge the wallet, read the audit log). Proves the document is good enough
# for a real generator: the generation must succeed without warnings, and every answer must parse
# into its documented model.
#
#   tools/client-smoke.sh [BIN]        BIN: the orgbase binary (default target/debug/orgbase)
#
# Needs python3 and curl; installs openapi-python-client with pip when missing. The client is
# generated into a temporary directory, never committed. About 15 seconds.
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$repo/target/debug/orgbase}
[[ $bin = /* ]] || bin=$PWD/$bin
[[ -x $bin ]] || { echo "client-smoke: no binary at $bin" >&2; exit 2; }
# The release this test was written against: a newer one may generate other names.
GENERATOR=openapi-python-client==0.29.1
if [[ $(openapi-python-client --version 2>/dev/null) != *" 0.29.1"* ]]; then
  python3 -m pip install --quiet "$GENERATOR" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "$GENERATOR" \
    || { echo "client-smoke: cannot install $GENERATOR (python3 -m pip install '$GENERATOR')" >&2; exit 2; }
fi

tmp=$(mktemp -d /tmp/client-smoke.XXXXXX)
server_pid=
cleanup() {
  local rc=$?
  [[ -n $server_pid ]] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

echo "client-smoke: generating the client from openapi.json"
(cd "$tmp" && openapi-python-client generate --path "$repo/openapi.json" \
  --config "$repo/tools/openapi-python-client.yaml" \
  --output-path "$tmp/orgbase_client" --meta none) >"$tmp/generate.log" 2>&1 \
  || { cat "$tmp/generate.log" >&2; echo "client-smoke: generation failed" >&2; exit 1; }
if grep -qi "warning" "$tmp/generate.log"; then
  cat "$tmp/generate.log" >&2
  echo "client-smoke: the generator warned about openapi.json (above)" >&2
  exit 1
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key="obk_smoke_$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
mkdir -p "$tmp/server"
(cd "$tmp/server" && RUST_LOG=warn ORGBASE_BOOTSTRAP_KEY=$key \
  exec "$bin" serve --listen "127.0.0.1:$port" --database-url sqlite://orgbase.db) \
  >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; echo "client-smoke: the server exited" >&2; exit 1; }
  sleep 0.1
done

python3 "$repo/tools/client_smoke.py" "$tmp" "http://127.0.0.1:$port" "$key" \
  || { echo "client-smoke: failed; the server's log:" >&2; tail -n 50 "$tmp/server.log" >&2; exit 1; }
