#!/usr/bin/env bash
# Installs everything salas needs on a bare machine, idempotently:
#   scripts/setup.sh          the server: a virtualenv in .venv with salas and its core
#                             dependencies (SQLite needs nothing more), and the official browser
#                             client from npm (salas serves it at /socket.io/socket.io.js)
#   scripts/setup.sh --test   also the test tools: the test extras (every optional backend with
#                             them), Node's reference packages, Debian's Chromium for the browser
#                             tests, a C compiler for the load generators and Debian's nginx
#                             (tests/integration/test_nginx.py runs docs/deploy/nginx.conf)
# Missing system packages (python3-venv, npm, chromium, gcc, nginx) come from apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv >/dev/null 2>&1; then
    # Debian's python3 creates no venv (no ensurepip) without python3-venv.
    rm -rf .venv
    apt_install python3-venv
    "$python" -m venv .venv
  fi
fi
extras=""
[ $want_test = 1 ] && extras="[test]"
stamp=".venv/.installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".$extras"
  touch "$stamp"
fi

command -v npm >/dev/null || apt_install npm
if [ ! -f node_modules/socket.io-client/dist/socket.io.js ] || [ package.json -nt node_modules/.package-lock.json ]; then
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
fi

if [ $want_test = 1 ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v cc >/dev/null || command -v gcc >/dev/null || missing+=(gcc libc6-dev)
  # In /usr/sbin, which a non-root PATH may lack. The package's service is not used: the
  # test runs its own nginx as the current user.
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)
  [ ${#missing[@]} = 0 ] || apt_install "${missing[@]}"
fi
