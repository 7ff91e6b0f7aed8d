#!/usr/bin/env bash
# Ensure the system packages and Node modules the SAU test suite needs are present.
#
# Idempotent: installs only what is missing, runs `apt-get update` only when
# something is to be installed, and runs `npm ci` only when node_modules is
# missing or package-lock.json changed since the last install.
#
#   PostgreSQL server binaries (initdb, pg_ctl, postgres)  <- Debian `postgresql`
#   Chromium at /usr/bin/chromium + a font for screenshots <- `chromium`, `fonts-dejavu-core`
#   Node.js + npm                                          <- `nodejs`, `npm`
#
# Never downloads a browser of its own (no `playwright install`): browser tests
# drive Debian's /usr/bin/chromium.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

log() { printf '[ensure-system-deps] %s\n' "$*" >&2; }

have_pg_server() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
            return 0
        fi
    done
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1
}

have_font() {
    if command -v fc-list >/dev/null 2>&1; then
        [[ -n "$(fc-list 2>/dev/null | head -n 1)" ]] && return 0
    fi
    [[ -d /usr/share/fonts/truetype/dejavu ]]
}

apt_install() {
    # $@: Debian packages to install.
    if [[ "$(id -u)" -ne 0 ]]; then
        log "ERROR: missing system packages: $*"
        log "Install them as root, e.g.:"
        log "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $*"
        exit 1
    fi
    if [[ -z "${_APT_UPDATED:-}" ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        _APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

missing=()
have_pg_server || missing+=(postgresql)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
have_font || missing+=(fonts-dejavu-core)
command -v node >/dev/null 2>&1 || missing+=(nodejs)

if ((${#missing[@]})); then
    apt_install "${missing[@]}"
else
    log "system packages present (postgresql, chromium, fonts, node)"
fi

# npm separately: a NodeSource `nodejs` ships its own npm and conflicts with Debian's.
if ! command -v npm >/dev/null 2>&1; then
    apt_install npm
fi

# Sanity checks after installing.
have_pg_server || { log "ERROR: PostgreSQL server binaries still not found"; exit 1; }
[[ -x /usr/bin/chromium ]] || { log "ERROR: /usr/bin/chromium still not found"; exit 1; }

# Node packages of this project (axe-core, ...).
if [[ -f package.json ]]; then
    stamp=node_modules/.sau-npm-ci.stamp
    want="$(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)"
    have="$(cat "$stamp" 2>/dev/null || true)"
    if [[ ! -d node_modules || "$want" != "$have" ]]; then
        log "npm ci"
        npm ci --no-audit --no-fund --loglevel=error
        printf '%s\n' "$want" >"$stamp"
    else
        log "node_modules up to date"
    fi
fi
