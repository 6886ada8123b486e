#!/usr/bin/env bash
# Build (and prepare the host for) the project's container images with podman.
#
#   tools/container-images.sh check    exit 0 when podman can build here, else say why (exit 1)
#   tools/container-images.sh setup    install podman & co. if missing, make the base image if absent
#   tools/container-images.sh build    setup, then build sgx-quote-helper and sgx-quote-helper-sample
#   tools/container-images.sh env      print the environment podman needs (eval it)
#   tools/container-images.sh dcap intel|azure
#                                      setup, then build the dcap backend's image (target dcap,
#                                      Intel's DCAP runtime and that quote provider), tagged
#                                      <release>-dcap-<provider> as the chart's presets name it.
#                                      Needs download.01.org and a registry for its Ubuntu base:
#                                      never run in CI (docs/images.md)
#
# Environment:
#   CA_BUNDLE   PEM bundle that pip inside the build trusts (TLS-intercepting
#               networks); default the host's system bundle if present, "" for
#               none. It is a build secret: it never stays in an image.
#   IMAGE_TAG   tag of both images (default: the release, e.g. 0.1.0, which the Helm
#               chart's appVersion names, and latest)
#   BASE_IMAGE  base image (default docker.io/library/debian:trixie-slim); made
#               locally with mmdebstrap when absent, as no registry is assumed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$repo/deploy/docker/containers.conf}"
BASE_IMAGE="${BASE_IMAGE:-docker.io/library/debian:trixie-slim}"
release="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/src/sgx_quote_helper/_version.py")"
if [ -n "${IMAGE_TAG:-}" ]; then
    tags=("$IMAGE_TAG")
else
    tags=("${release:-latest}" latest)
fi
if [ -z "${CA_BUNDLE+set}" ] && [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
fi
CA_BUNDLE="${CA_BUNDLE:-}"

log() { printf '[images %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

tools_missing() {
    local t missing=()
    for t in podman buildah mmdebstrap runc newuidmap slirp4netns; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    echo "${missing[*]:-}"
}

install_tools() {
    local missing
    missing="$(tools_missing)"
    [ -z "$missing" ] && return 0
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
        || die "missing: $missing; install podman buildah mmdebstrap runc uidmap slirp4netns"
    log "installing podman buildah mmdebstrap runc uidmap slirp4netns (missing: $missing)"
    local start=$SECONDS
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    local packages=(podman buildah mmdebstrap runc uidmap slirp4netns)
    # A fresh machine may have no or stale package lists: update once and retry.
    "${apt[@]}" install -y -q "${packages[@]}" >/dev/null 2>&1 \
        || { "${apt[@]}" update -q >/dev/null && "${apt[@]}" install -y -q "${packages[@]}" >/dev/null; }
    log "tools installed in $((SECONDS - start)) s"
}

debian_mirror() {
    # The mirror apt already uses (deb822 or one-line sources), else Debian's CDN.
    local m
    m="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
    [ -n "$m" ] || m="$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
    echo "${m:-http://deb.debian.org/debian}"
}

make_base_image() {
    podman image exists "$BASE_IMAGE" && return 0
    case "$BASE_IMAGE" in
        *debian:trixie-slim) ;;
        *) die "$BASE_IMAGE is not present and only debian:trixie-slim can be made locally" ;;
    esac
    local mirror tmp start=$SECONDS
    mirror="$(debian_mirror)"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    log "making $BASE_IMAGE with mmdebstrap from $mirror"
    # Like the official -slim images: minbase, and dpkg leaves out manuals,
    # documentation and translations (kept for later installs in the image too).
    mmdebstrap --quiet --variant=minbase \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        trixie "$tmp/rootfs.tar" "$mirror" >&2
    podman import --quiet --change 'CMD ["bash"]' "$tmp/rootfs.tar" "$BASE_IMAGE" >/dev/null
    log "base image made in $((SECONDS - start)) s"
}

check() {
    local missing
    missing="$(tools_missing)"
    if [ -n "$missing" ]; then
        echo "podman tools not installed (missing: $missing); run tools/container-images.sh setup"
        return 1
    fi
    if ! podman info >/dev/null 2>&1; then
        echo "podman does not work here: $(podman info 2>&1 | tail -n1)"
        return 1
    fi
}

build_one() {
    local target="$1" name="$2" start=$SECONDS
    shift 2
    # Further arguments go to podman build (the dcap target's pull policy and build-arg).
    local args=(build --pull=never --layers --target "$target" -f "$repo/deploy/docker/Dockerfile"
                --build-arg "BASE_IMAGE=$BASE_IMAGE" "$@") tag
    for tag in "${tags[@]}"; do args+=(-t "localhost/$name:$tag"); done
    if [ -n "$CA_BUNDLE" ]; then
        [ -r "$CA_BUNDLE" ] || die "CA_BUNDLE=$CA_BUNDLE is not readable"
        args+=(--secret "id=ca-bundle,src=$CA_BUNDLE")
    fi
    log "building localhost/$name:${tags[0]} (target $target)"
    podman "${args[@]}" "$repo" >&2
    log "built $name in $((SECONDS - start)) s"
}

cmd="${1:-build}"
case "$cmd" in
    check) check ;;
    env) echo "export CONTAINERS_CONF=$CONTAINERS_CONF" ;;
    setup) install_tools; make_base_image ;;
    build)
        install_tools
        make_base_image
        build_one daemon sgx-quote-helper
        build_one sample sgx-quote-helper-sample
        # Not the dcap target: it needs Intel's repository (see `dcap` below).
        ;;
    dcap)
        provider="${2:-}"
        case "$provider" in
            intel|azure) ;;
            *) die "usage: $0 dcap intel|azure (the quote provider library in the image)" ;;
        esac
        if [ -n "${IMAGE_TAG:-}" ]; then
            tags=("$IMAGE_TAG")
        else
            tags=("${release:-latest}-dcap-$provider")
        fi
        install_tools
        make_base_image
        # --pull=missing: the Ubuntu base comes from a registry (a later --pull wins).
        build_one dcap sgx-quote-helper --pull=missing --build-arg "QUOTE_PROVIDER=$provider"
        ;;
    *) die "unknown command $cmd (check, setup, build, dcap, env)" ;;
esac
