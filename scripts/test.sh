#!/usr/bin/env bash
# The project's test command: checks formatting and vet, then runs every Go
# test with the race detector (real redis-server, real WebSocket clients, real
# wscat) and the web client's tests (node and headless Chromium).
#
# It installs what is missing: redis-server, nginx, docker-compose (its
# config check only: no Docker engine is needed) and chromium with apt-get, npm
# packages (wscat, ws, playwright-core) with npm ci. Under CI=true a
# component that cannot be installed fails the run; elsewhere the tests that
# need it say so and skip.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

apt_install() {
  local pkgs=("$@")
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  else
    return 1
  fi
}

need() { # need BINARY PACKAGE
  command -v "$1" >/dev/null && return 0
  say "installing $2"
  if ! apt_install "$2" || ! command -v "$1" >/dev/null; then
    if [ "${CI:-}" = "true" ]; then
      echo "FATAL: $1 is required in CI and could not be installed" >&2
      exit 1
    fi
    echo "warning: $1 missing (apt-get install $2); tests that need it will skip" >&2
  fi
}

need redis-server redis-server
need nginx nginx
need docker-compose docker-compose
need chromium chromium

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  say "npm ci"
  npm ci --no-audit --no-fund
fi
export PATH="$PWD/node_modules/.bin:$PATH"

say "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi

say "go vet"
go vet ./...

say "go test -race"
go test -race -count=1 -timeout 20m -skip '^(TestSoak|TestRollingRestart|TestNodeSIGKILLBehindNginx)$' ./...

say "soak test (3 nodes, real Redis, faults)"
# Run on its own and verbose, so that its one-line summary is printed.
soak_log=$(mktemp)
if ! go test -race -count=1 -timeout 10m -run '^TestSoak$' -v ./cmd/switchboard/ >"$soak_log" 2>&1; then
  tail -n 200 "$soak_log"
  rm -f "$soak_log"
  exit 1
fi
grep -E '^soak: ' "$soak_log" | head -n 1
grep -E '^(--- |ok )' "$soak_log"
rm -f "$soak_log"

say "deployment tests (3 nodes behind nginx: rolling restart, node kill)"
# Verbose too, for their summaries: how long the clients were disconnected.
deploy_log=$(mktemp)
if ! go test -race -count=1 -timeout 5m -run '^(TestRollingRestart|TestNodeSIGKILLBehindNginx)$' -v ./cmd/switchboard/ >"$deploy_log" 2>&1; then
  tail -n 200 "$deploy_log"
  rm -f "$deploy_log"
  exit 1
fi
grep -E '^(rolling|sigkill): ' "$deploy_log" || true
grep -E '^(--- |ok )' "$deploy_log"
rm -f "$deploy_log"

say "web client tests"
npm test
