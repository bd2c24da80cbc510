#!/usr/bin/env bash
# Build the test control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)
# once into ~/.cache/chaoskit/k8s-<version>/bin; rerunning skips whatever is already built.
# Gentle on a shared machine: nice 19, one package at a time, one Go thread.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
K8S_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/go.mod")"
ETCD_VERSION="$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$here/etcd/go.mod")"
KWOK_VERSION="v0.7.0"
PREFIX="${CHAOSKIT_K8S_PREFIX:-$HOME/.cache/chaoskit/k8s-${K8S_VERSION}}"
BIN="$PREFIX/bin"
export CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-1}" GOFLAGS="-mod=mod -buildvcs=false"
BUILD=(nice -n 19 go build -p "${GO_BUILD_P:-1}" -trimpath)
mkdir -p "$BIN"
start=$(date +%s)

step() {  # step NAME COMMAND...: run COMMAND unless $BIN/NAME exists, and time it
  local name=$1; shift
  if [[ -x "$BIN/$name" ]]; then echo "skip $name (built)"; return; fi
  local t0=$(date +%s)
  echo "build $name ..."
  "$@"
  echo "built $name in $(( $(date +%s) - t0 ))s"
}

build_kube() {  # build_kube CMD: one Kubernetes command, version stamped like a release build
  (cd "$here" && "${BUILD[@]}" -o "$BIN/$1.tmp" \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION}" \
    "k8s.io/kubernetes/cmd/$1" && mv "$BIN/$1.tmp" "$BIN/$1")
}

build_etcd() {
  (cd "$here/etcd" && "${BUILD[@]}" -o "$BIN/etcd.tmp" -ldflags "-s -w" \
    go.etcd.io/etcd/server/v3 && mv "$BIN/etcd.tmp" "$BIN/etcd")
}

build_kwok() {  # kwok has no replace directives, so a plain go install works
  (cd "$here" && GOBIN="$BIN" GOFLAGS=-buildvcs=false nice -n 19 \
    go install -p "${GO_BUILD_P:-1}" -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}")
}

step etcd build_etcd
step kwok build_kwok
for cmd in kube-apiserver kube-controller-manager kube-scheduler; do step "$cmd" build_kube "$cmd"; done

echo "control plane ${K8S_VERSION} (etcd ${ETCD_VERSION}, kwok ${KWOK_VERSION}) in $BIN"
echo "wall time this run: $(( $(date +%s) - start ))s"
echo "disk: binaries $(du -sh "$PREFIX" | cut -f1)," \
  "go build cache $(du -sh "$(go env GOCACHE)" | cut -f1)," \
  "module cache $(du -sh "$(go env GOMODCACHE)" | cut -f1)"
