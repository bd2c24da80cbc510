#!/usr/bin/env bash
# Builds the payment stack's image without a registry; prints its reference on the last line.
#   k8s/image/build.sh              build what is missing, tag it :latest, print the reference
#   k8s/image/build.sh --print-ref  print the reference the current sources build, build nothing
# base:  mmdebstrap bookworm (python3, python3-venv, ca-certificates), imported as
#        localhost/chaoskit/base:bookworm-<hash of the recipe>; rootfs tarball cached in
#        ~/.cache/chaoskit/images (CHAOSKIT_CACHE overrides ~/.cache/chaoskit)
# stack: wheels built here with the host's .venv pip (dependencies cached per dependency list),
#        installed by k8s/image/Containerfile into /opt/chaoskit; tagged
#        localhost/chaoskit/payment-stack:<version>-<hash of base, Containerfile, pyproject.toml
#        and every file under chaoskit/>
# CHAOSKIT_ENGINE_CLI=docker builds into a Docker Engine instead of Podman (default: podman).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${CHAOSKIT_CACHE:-$HOME/.cache/chaoskit}"
IMAGES="$CACHE/images"
LOG="$IMAGES/build.log"
CLI="${CHAOSKIT_ENGINE_CLI:-podman}"
PIP="${CHAOSKIT_PIP:-$ROOT/.venv/bin/pip}"
SUITE=bookworm
SOURCES=/etc/apt/sources.list.d/debian.sources
BASE_PACKAGES=(python3 python3-venv ca-certificates)
# The whole recipe is hashed into the base tag: change a line here and the base is rebuilt.
# shellcheck disable=SC2016  # "$1" is the root directory mmdebstrap passes to its hooks
MMDEBSTRAP_ARGS=(
  --variant=essential "--include=$(IFS=,; echo "${BASE_PACKAGES[*]}")"
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  "--dpkgopt=path-exclude=/usr/share/doc/*" "--dpkgopt=path-include=/usr/share/doc/*/copyright"
  "--dpkgopt=path-exclude=/usr/share/man/*" "--dpkgopt=path-exclude=/usr/share/info/*"
  "--dpkgopt=path-exclude=/usr/share/locale/*"
  '--customize-hook=echo "payments:x:10001:10001::/nonexistent:/usr/sbin/nologin" >> "$1/etc/passwd"'
  '--customize-hook=echo "payments:x:10001:" >> "$1/etc/group"'
)

die() { echo "build.sh: $*" >&2; exit 1; }
say() { echo "image: [${SECONDS}s] $*" >&2; }
short_hash() { sha256sum | cut -c1-12; }

# Podman's command line uses the containers.conf of chaoskit's Podman service (written by
# chaoskit.platforms.containers.engine) when there is one, else runc and no systemd by flags.
if [ "$CLI" = podman ] && [ -z "${CONTAINERS_CONF:-}" ] && [ -f "$CACHE/podman/containers.conf" ]; then
  export CONTAINERS_CONF="$CACHE/podman/containers.conf"
fi
engine() {
  if [ "$CLI" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
    podman --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
  else
    "$CLI" "$@"
  fi
}

# Inputs of the wheel: pyproject.toml and every file under chaoskit/ but bytecode, NUL-separated.
source_files() {
  (cd "$ROOT" && printf '%s\0' pyproject.toml \
    && find chaoskit -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z)
}

# Every image built from the base inherits this label: pruning touches only chaoskit's images.
IMPORT_CHANGES=(--change 'LABEL io.chaoskit.image=payment-stack' --change 'CMD ["/bin/bash"]')

base_ref() {
  local recipe
  recipe="$(printf '%s\n' "$SUITE" "${MMDEBSTRAP_ARGS[@]}" "${IMPORT_CHANGES[@]}" | short_hash)"
  echo "localhost/chaoskit/base:$SUITE-$recipe"
}

stack_ref() {
  local version hash
  version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$ROOT/pyproject.toml" | head -n1)"
  [ -n "$version" ] || die "no version in $ROOT/pyproject.toml"
  hash="$({ base_ref; sha256sum "$HERE/Containerfile" | cut -d' ' -f1
            source_files | (cd "$ROOT" && xargs -0 sha256sum); } | short_hash)"
  echo "localhost/chaoskit/payment-stack:$version-$hash"
}

dependencies() {
  "$(dirname "$PIP")/python" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
    "$ROOT/pyproject.toml"
}

require_tools() {
  command -v "$CLI" >/dev/null || die "$CLI is not installed; run \`make setup\` (apt-get install podman runc)"
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed; run \`make setup\` (apt-get install mmdebstrap)"
  [ -x "$PIP" ] || die "no pip at $PIP to build wheels; run \`make setup\` (or set CHAOSKIT_PIP)"
  [ "$(id -u)" = 0 ] || die "mmdebstrap and rootful $CLI need root here; run as root"
}

# Runs a step quietly; on failure shows the end of the log.
logged() {
  "$@" >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; die "failed: $* (full log: $LOG)"; }
}

has_image() { engine image inspect "$1" >/dev/null 2>&1; }

ensure_base() {
  local ref="$1" tarball mirror=()
  has_image "$ref" && return
  tarball="$IMAGES/base-${ref##*:}.tar"
  if [ ! -s "$tarball" ]; then
    say "debootstrapping $SUITE with mmdebstrap into $tarball"
    [ -r "$SOURCES" ] && mirror=("$SOURCES")
    # mmdebstrap picks the format from the name: the partial file must end in .tar too.
    logged mmdebstrap --quiet "${MMDEBSTRAP_ARGS[@]}" "$SUITE" "${tarball%.tar}.partial.tar" \
      "${mirror[@]}"
    mv "${tarball%.tar}.partial.tar" "$tarball"
  fi
  say "importing $tarball as $ref"
  logged engine import "${IMPORT_CHANGES[@]}" "$tarball" "$ref"
}

# Wheels of the dependencies, cached per dependency list (a code change reuses them).
ensure_dependency_wheels() {
  local deps_hash dir
  deps_hash="$(dependencies | short_hash)"
  dir="$IMAGES/wheels/deps-$deps_hash"
  if [ ! -e "$dir/.complete" ]; then
    say "building dependency wheels into $dir"
    rm -rf "$dir" && mkdir -p "$dir"
    dependencies > "$dir/requirements.txt"
    logged "$PIP" wheel --quiet --disable-pip-version-check -w "$dir" -r "$dir/requirements.txt"
    touch "$dir/.complete"
  fi
  echo "$dir"
}

CTX=""
build_stack() {
  local base="$1" ref="$2" ctx deps
  deps="$(ensure_dependency_wheels)"
  CTX="$(mktemp -d "$IMAGES/context.XXXXXX")"
  trap 'rm -rf "$CTX"' EXIT
  ctx="$CTX"
  mkdir -p "$ctx/src" "$ctx/app"
  # The wheel is built from a copy of exactly the hashed files (no stale build/ dir, no egg-info).
  source_files | (cd "$ROOT" && tar --null -T - -cf -) | tar -C "$ctx/src" -xf -
  say "building the chaoskit wheel"
  logged "$PIP" wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    -w "$ctx/app" "$ctx/src"
  rm -rf "$ctx/src"
  cp -al "$deps" "$ctx/deps" 2>/dev/null || cp -a "$deps" "$ctx/deps"
  rm -f "$ctx/deps/requirements.txt" "$ctx/deps/.complete"
  say "building $ref"
  local pull=(--pull=never)
  [ "$CLI" = podman ] || pull=()
  logged engine build "${pull[@]}" --network=none --build-arg "BASE=$base" \
    --build-arg "DEPS_HASH=${deps##*/deps-}" --build-arg "APP_HASH=${ref##*-}" \
    -f "$HERE/Containerfile" -t "$ref" "$ctx"
}

# Older builds of this stack are removed (those a container still uses stay), and so are the
# untagged images they leave; the layer cache of the current build is kept.
prune_old_stack_images() {
  local keep="$1" other
  for other in $(engine images --format '{{.Repository}}:{{.Tag}}' localhost/chaoskit/payment-stack); do
    case "$other" in "$keep"|*:latest) ;; *) engine rmi "$other" >/dev/null 2>&1 || true ;; esac
  done
  engine image prune -f --filter label=io.chaoskit.image >/dev/null 2>&1 || true
}

main() {
  local base ref
  base="$(base_ref)"
  ref="$(stack_ref)"
  if [ "${1:-}" = --print-ref ]; then echo "$ref"; return; fi
  [ $# -eq 0 ] || die "usage: $0 [--print-ref]"
  require_tools
  mkdir -p "$IMAGES"
  exec 9>"$IMAGES/.lock"
  flock 9
  : > "$LOG"
  if has_image "$ref"; then
    logged engine tag "$ref" localhost/chaoskit/payment-stack:latest
  else
    ensure_base "$base"
    build_stack "$base" "$ref"
    logged engine tag "$ref" localhost/chaoskit/payment-stack:latest
    prune_old_stack_images "$ref"
  fi
  echo "$ref"
}

main "$@"
