#!/usr/bin/env bash
# Runs the web client's tests (`npm test` calls this): the node unit,
# scripted-server and live-server tests, then the browser end-to-end test.
#
# The server is built once into a temporary directory. The browser test needs
# /usr/bin/chromium (or $CHROMIUM_PATH; apt-get install -y chromium) and, for
# its default two-node topology, redis-server. Without chromium the browser
# test is skipped, except under CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -d node_modules/ws ] || [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/@axe-core/playwright ]; then
  npm ci --no-audit --no-fund
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export SWITCHBOARD_BIN="$tmp/switchboard"
go build -o "$SWITCHBOARD_BIN" ./cmd/switchboard

echo "== web: node tests"
node --test web/test/*.test.mjs

echo "== web: browser test"
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "FATAL: $chromium is missing and CI=true: apt-get install -y chromium" >&2
    exit 1
  fi
  echo "skipping the browser test: $chromium is missing (apt-get install -y chromium)" >&2
  exit 0
fi
node --test web/test/*.e2e.mjs
