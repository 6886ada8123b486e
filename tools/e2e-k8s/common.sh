# Shared settings for the e2e-k8s scripts (sourced, not run).
# The build and run state lives outside the repository tree: Kubernetes' source
# tree, the Go build cache and the binaries take about 2 GB.
E2E_DIR="${SQH_E2E_K8S_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sgx-quote-helper/e2e-k8s}"
K8S_DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
K8S_VERSION="v1.20.2"
BIN="$E2E_DIR/bin"
ROOTFS="$E2E_DIR/root"          # etcd-server, kubernetes-client, reflect2 unpacked (not installed)
GOROOT_119=/usr/lib/go-1.19

log() { printf '[e2e-k8s %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

apt_get() {
    # Other apt users may hold the lock for a while; wait rather than fail.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}
