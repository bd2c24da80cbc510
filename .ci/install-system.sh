#!/usr/bin/env bash
# Installs the real servers chaoskit drives: idempotent, cached outside the repo.
#   Debian packages: haproxy nginx-light wrk chromium prometheus iproute2 mariadb-server (as root)
#   containers (without Recommends): podman with runc (Debian's crun refuses this machine's hybrid
#   cgroups), netavark + aardvark-dns (networks with DNS by name; CNI plugins as the fallback),
#   iptables (netavark's firewall), catatonit, uidmap, mmdebstrap (the stack image's base,
#   k8s/image/build.sh), docker-compose (v1; verified against the Podman service's Docker API)
#   toxiproxy-server v2.12.0 built with `go install` into ~/.cache/chaoskit/bin
#   with --kubernetes: kustomize, and the test control plane (kube-apiserver, controller-manager,
#   scheduler, etcd, kwok) built from our Go modules into ~/.cache/chaoskit/k8s-v*/ (cold:
#   ~10-25 min, then cached)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

CACHE="${CHAOSKIT_CACHE:-$HOME/.cache/chaoskit}"
BIN="$CACHE/bin"
TOXIPROXY_VERSION="v2.12.0"
DEBIAN_PACKAGES=(haproxy nginx-light wrk chromium prometheus iproute2 mariadb-server)
CONTAINER_PACKAGES=(podman runc conmon netavark aardvark-dns containernetworking-plugins iptables
                    catatonit uidmap mmdebstrap docker-compose)

missing_debian() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  echo "${missing[@]:-}"
}

# install_debian LABEL [apt-get option...] -- PACKAGE...
install_debian() {
  local label="$1" options=() missing
  shift
  while [ "$1" != -- ]; do options+=("$1"); shift; done
  shift
  missing="$(missing_debian "$@")"
  [ -z "$missing" ] && { echo "system: Debian packages present ($label)"; return; }
  if [ "$(id -u)" != 0 ]; then
    echo "system: missing Debian packages: $missing" >&2
    echo "  run as root: apt-get install -y ${options[*]:-} $missing" >&2
    exit 1
  fi
  echo "system: installing $missing"
  apt-get update -qq
  # shellcheck disable=SC2086  # $missing is a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    "${options[@]}" $missing >/dev/null
}

install_toxiproxy() {
  if [ -x "$BIN/toxiproxy-server" ] && [ "$(cat "$BIN/.toxiproxy-version" 2>/dev/null)" = "$TOXIPROXY_VERSION" ]; then
    echo "system: toxiproxy-server $TOXIPROXY_VERSION cached in $BIN"
    return
  fi
  command -v go >/dev/null || { echo "system: Go is needed to build toxiproxy-server" >&2; exit 1; }
  echo "system: building toxiproxy-server $TOXIPROXY_VERSION (go install, cached in $BIN)"
  local tmp
  tmp="$(mktemp -d)"
  GOBIN="$tmp" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mkdir -p "$BIN"
  mv "$tmp/server" "$BIN/toxiproxy-server"
  echo "$TOXIPROXY_VERSION" > "$BIN/.toxiproxy-version"
  rm -rf "$tmp"
}

install_kubernetes_tools() {
  # Set-up owns the machine here, so build with both cores (the scripts default to one).
  GOMAXPROCS="${GOMAXPROCS:-2}" "$ROOT/k8s/install-kustomize.sh"
  GOMAXPROCS="${GOMAXPROCS:-2}" GO_BUILD_P="${GO_BUILD_P:-2}" "$ROOT/tests/k8s-control-plane/build.sh"
}

install_debian servers -- "${DEBIAN_PACKAGES[@]}"
install_debian containers --no-install-recommends -- "${CONTAINER_PACKAGES[@]}"
install_toxiproxy
# The test control plane is for the test suite only (`make test`); the demo does not need it.
if [ "${1:-}" = "--kubernetes" ]; then
  install_kubernetes_tools
fi
