#!/usr/bin/env bash
# make e2e-k8s: build Kubernetes 1.20 once (cached outside the tree), then run
# the end-to-end checks against it. Usage: tools/e2e-k8s/run.sh VENV_BIN
# (VENV_BIN holds python, sgx-quote-helper and helm: `make k8s-tools` puts helm there).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv_bin="$(cd "${1:-.venv/bin}" && pwd)"
. "$here/common.sh"
start=$SECONDS
bash "$here/build.sh"
log "Kubernetes binaries ready after $((SECONDS - start)) s"
exec "$venv_bin/python" "$here/e2e.py" --state-dir "$E2E_DIR" --venv-bin "$venv_bin" \
    --helm "$venv_bin/helm"
