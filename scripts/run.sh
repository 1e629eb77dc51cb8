#!/usr/bin/env bash
# `make run`: start camsvc in the foreground. With no ./camsvc.yaml and no $CAMSVC_CONFIG,
# it writes a local development config once (.cache/run/camsvc.yaml: a random JWT secret,
# state under .cache/run/) so the service starts on any machine without root paths. On a
# machine with no camera at all it runs the demo (`camsvc serve --demo`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${CAMSVC_CONFIG:-}" ] && [ ! -f camsvc.yaml ]; then
    dir=.cache/run
    export CAMSVC_CONFIG=$dir/camsvc.yaml
    if [ ! -f "$CAMSVC_CONFIG" ]; then
        mkdir -p "$dir"
        secret=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))')
        umask 077
        cat > "$CAMSVC_CONFIG" <<YAML
# Written by make run for local development; edit freely or create ./camsvc.yaml instead.
security:
  jwt_secret_key: "$secret"
  api_keys_path: $PWD/$dir/api_keys.json
snapshots:
  path: $PWD/$dir/snapshots
recording:
  path: $PWD/$dir/recordings
storage:
  db_path: $PWD/$dir/camsvc.db
logging:
  format: console
YAML
    fi
    echo "make run: using $CAMSVC_CONFIG"
    echo "make run: an admin token: CAMSVC_CONFIG=$CAMSVC_CONFIG .venv/bin/camsvc token --role admin"
fi
# Demo mode only when this machine has no V4L2 node at all: never in place of real cameras.
if ! compgen -G "/dev/video[0-9]*" >/dev/null; then
    echo "make run: no /dev/video* on this machine: starting in demo mode (two emulated cameras)"
    set -- --demo "$@"
fi
exec .venv/bin/camsvc serve "$@"
