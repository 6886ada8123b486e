#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager and kube-scheduler 1.20.2 from
# Debian bookworm's source package, offline except for Debian's own archive.
# Idempotent: every step is skipped when its output exists.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

mkdir -p "$E2E_DIR" "$BIN" "$ROOTFS"
[ "$(id -u)" = 0 ] || die "needs root (apt-get); run as root or pre-install golang-1.19-go"

if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] && [ -x "$BIN/kube-scheduler" ] \
   && [ -x "$ROOTFS/usr/bin/etcd" ] && [ -x "$ROOTFS/usr/bin/kubectl" ]; then
    log "binaries present in $BIN (delete it to rebuild)"
    exit 0
fi

# --- the deb-src line, on the mirror apt already uses -------------------------
mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
if [ -z "$mirror" ]; then
    mirror="$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
fi
[ -n "$mirror" ] || die "cannot find the Debian mirror in the apt sources"
# apt refuses two entries for one mirror with different Signed-By values: reuse it.
keyring="$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
opts=""
[ -n "$keyring" ] && opts="[signed-by=$keyring] "
src_list=/etc/apt/sources.list.d/sgx-quote-helper-e2e-src.list
line="deb-src ${opts}$mirror bookworm main"
if ! grep -qsxF "$line" "$src_list"; then
    log "adding: $line"
    echo "$line" > "$src_list"
    apt_get update -q || { rm -f "$src_list"; die "apt-get update failed with $line"; }
fi

# --- toolchain and unpacked binaries ------------------------------------------
if [ ! -x "$GOROOT_119/bin/go" ] || ! command -v dpkg-source >/dev/null; then
    log "installing golang-1.19-go dpkg-dev"
    apt_get install -y -q --no-install-recommends golang-1.19-go dpkg-dev
fi
if [ ! -x "$ROOTFS/usr/bin/etcd" ] || [ ! -x "$ROOTFS/usr/bin/kubectl" ] \
   || [ ! -d "$ROOTFS/usr/share/gocode/src/github.com/modern-go/reflect2" ]; then
    log "downloading etcd-server kubernetes-client golang-github-modern-go-reflect2-dev"
    mkdir -p "$E2E_DIR/debs"
    (cd "$E2E_DIR/debs" && apt_get download etcd-server kubernetes-client golang-github-modern-go-reflect2-dev)
    for deb in "$E2E_DIR"/debs/*.deb; do dpkg-deb -x "$deb" "$ROOTFS"; done
fi

# --- the source tree ------------------------------------------------------------
src="$E2E_DIR/src/kubernetes"
if [ ! -f "$src/cmd/kube-apiserver/apiserver.go" ]; then
    log "downloading the kubernetes $K8S_DEB_VERSION source package"
    rm -rf "$E2E_DIR/src" && mkdir -p "$E2E_DIR/src"
    (cd "$E2E_DIR/src" && apt_get source --download-only "kubernetes=$K8S_DEB_VERSION" >/dev/null)
    (cd "$E2E_DIR/src" && dpkg-source --no-check -x kubernetes_*.dsc kubernetes >/dev/null)
fi
[ -f "$src/cmd/kube-apiserver/apiserver.go" ] || die "source tree not unpacked in $src"

# GOPATH layout, as the 1.20 Makefile builds.
gopath="$E2E_DIR/gopath"
mkdir -p "$gopath/src/k8s.io"
ln -sfn "$src" "$gopath/src/k8s.io/kubernetes"
export GOPATH="$gopath" GO111MODULE=off GOFLAGS= CGO_ENABLED=0 GOCACHE="$E2E_DIR/gocache"
export PATH="$GOROOT_119/bin:$PATH"
cd "$gopath/src/k8s.io/kubernetes"

# --- fix 1: reflect2 1.0.1 crashes on Go >= 1.18; use Debian's 1.0.2 ---------------
if ! grep -qs 'go1.18' vendor/github.com/modern-go/reflect2/*.go; then
    log "replacing vendored modern-go/reflect2 with Debian's"
    rm -rf vendor/github.com/modern-go/reflect2
    cp -r "$ROOTFS/usr/share/gocode/src/github.com/modern-go/reflect2" vendor/github.com/modern-go/reflect2
    rm -f vendor/github.com/modern-go/reflect2/go.mod vendor/github.com/modern-go/reflect2/*_test.go
fi

# --- fix 2: version strings (else /version says v0.0.0-master) ----------------------
for f in staging/src/k8s.io/component-base/version/base.go staging/src/k8s.io/client-go/pkg/version/base.go; do
    sed -i -E \
        -e 's/^(\s*gitMajor\s+string)(\s*=\s*"[^"]*")?/\1 = "1"/' \
        -e 's/^(\s*gitMinor\s+string)(\s*=\s*"[^"]*")?/\1 = "20"/' \
        -e "s/^(\\s*gitVersion\\s+(string\\s*)?=\\s*)\"[^\"]*\"/\\1\"$K8S_VERSION\"/" \
        -e 's/^(\s*gitTreeState\s+(string\s*)?=\s*)"[^"]*"/\1"clean"/' \
        "$f"
    grep -q "\"$K8S_VERSION\"" "$f" || die "could not set the version in $f"
done

# --- fix 3: generate the OpenAPI definitions with the vendored openapi-gen ---------
openapi_out=pkg/generated/openapi/zz_generated.openapi.go
if [ ! -s "$openapi_out" ]; then
    log "generating $openapi_out"
    go build -o "$E2E_DIR/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
    # The packages that ask for OpenAPI generation, as build/root/Makefile.generated_files finds them.
    inputs="$(grep -Rl --include='*.go' '+k8s:openapi-gen=' pkg cmd vendor/k8s.io 2>/dev/null \
        | xargs -n1 dirname | LC_ALL=C sort -u | sed 's#^#k8s.io/kubernetes/#' | paste -sd, -)"
    "$E2E_DIR/openapi-gen" \
        --input-dirs "$inputs" \
        --output-package k8s.io/kubernetes/pkg/generated/openapi \
        --output-file-base zz_generated.openapi \
        --go-header-file hack/boilerplate/boilerplate.generatego.txt \
        --report-filename "$E2E_DIR/openapi-report.txt" \
        --output-base "$gopath/src" >/dev/null
    [ -s "$openapi_out" ] || die "openapi-gen wrote nothing"
fi

# --- build --------------------------------------------------------------------------
for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    if [ ! -x "$BIN/$cmd" ]; then
        log "go build ./cmd/$cmd"
        start=$SECONDS
        go build -o "$BIN/$cmd.tmp" "./cmd/$cmd"
        mv "$BIN/$cmd.tmp" "$BIN/$cmd"
        log "built $cmd in $((SECONDS - start)) s"
    fi
done
"$BIN/kube-apiserver" --version
log "done: $BIN"
