#!/usr/bin/env bash
# Install the real kustomize once into ~/.cache/chaoskit/bin (the tests compare our renderer to it).
set -euo pipefail
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.1}"
BIN="${CHAOSKIT_CACHE:-$HOME/.cache/chaoskit}/bin"
if [[ -x "$BIN/kustomize" ]] && "$BIN/kustomize" version | grep -q "${KUSTOMIZE_VERSION}"; then
  echo "kustomize ${KUSTOMIZE_VERSION} already in $BIN"; exit 0
fi
mkdir -p "$BIN"
# -X stamps the version, which `go install` of a module otherwise leaves as "(devel)".
GOBIN="$BIN" CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-1}" GOFLAGS=-buildvcs=false nice -n 19 \
  go install -p 1 -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=${KUSTOMIZE_VERSION}" \
  "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"
"$BIN/kustomize" version
