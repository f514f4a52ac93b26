#!/usr/bin/env bash
# What the tests need besides Python packages: Chromium, Node.js and the npm packages of
# tests/browser (the official MCP Apps host bridge and SDK, playwright-core, esbuild), for
# the browser test. Installs what is missing (system packages with apt-get, as root) and
# is quick when everything is there. PostgreSQL's server binaries, for the replica
# tests, are expected on the machine (Debian: postgresql-15).
set -euo pipefail
cd "$(dirname "$0")"
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "tests/browser/setup.sh: install ${missing[*]} first (for example: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
# The official MCP conformance suite (its client OAuth scenarios drive our downstream
# client, tests/downstream/test_conformance.py), with the Node.js 22 it needs, from npm.
cd ../conformance
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
