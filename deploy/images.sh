#!/usr/bin/env bash
# Makes sure the Postgres, Vault and Debian base images that rotor's stack
# and tests use exist locally, and prints `export NAME=image` lines for them:
#
#   eval "$(deploy/images.sh)"
#
# For each image: a name already set in the environment is used as it is;
# otherwise the public image is used if it is present or can be pulled;
# otherwise a local stand-in is built from Debian's packages and Vault's
# source, once, and reused on later runs. Progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
images="$here/images"

log() { echo "images: $*" >&2; }
exists() { docker image inspect "$1" >/dev/null 2>&1; }

# pick VAR PUBLIC LOCAL BUILD_FUNCTION
pick() {
  local var=$1 public=$2 local_name=$3 build=$4
  local chosen=${!var:-}

  if [[ -n "$chosen" ]]; then
    exists "$chosen" || docker pull -q "$chosen" >&2 || { log "$var=$chosen is neither local nor pullable"; return 1; }
  elif exists "$public"; then
    chosen=$public
  elif exists "$local_name"; then
    chosen=$local_name
  elif docker pull -q "$public" >/dev/null 2>&1; then
    chosen=$public
  else
    log "cannot pull $public: building $local_name"
    local start=$SECONDS
    "$build" "$local_name"
    log "built $local_name in $((SECONDS - start))s"
    chosen=$local_name
  fi
  log "$var=$chosen"
  printf -v "$var" '%s' "$chosen"
  export "${var?}"
  echo "export $var=$chosen"
}

build_base() {
  "$images/base/build.sh" "$1"
}

build_postgres() {
  docker build -q -t "$1" --build-arg BASE_IMAGE="$ROTOR_BASE_IMAGE" "$images/postgres" >/dev/null
}

# The Vault server is built from its MPL-2.0 source in its own Go module,
# which takes several minutes and a few GB of module cache the first time.
build_vault() {
  (cd "$images/vault" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o vault .)
  docker build -q -t "$1" --build-arg BASE_IMAGE="$ROTOR_BASE_IMAGE" "$images/vault" >/dev/null
}

pick ROTOR_BASE_IMAGE debian:bookworm-slim rotor/debian:bookworm build_base
pick ROTOR_POSTGRES_IMAGE postgres:15 rotor/postgres:15 build_postgres
pick ROTOR_VAULT_IMAGE hashicorp/vault:1.13.0 rotor/vault:1.13.0 build_vault
