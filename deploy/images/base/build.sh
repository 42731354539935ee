#!/usr/bin/env bash
# Builds a minimal Debian bookworm image with debootstrap and imports it into
# Docker under the name given as $1 (default rotor/debian:bookworm). The
# Postgres, Vault and rotor images build FROM it on machines that cannot pull
# debian:bookworm-slim from a registry. Needs root and Debian's debootstrap.
set -euo pipefail

image=${1:-rotor/debian:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! command -v debootstrap >/dev/null; then
  echo "debootstrap is missing: installing it with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

rootfs=$(mktemp -d /tmp/rotor-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >&2
# apt's lists are fetched again by every image that installs packages.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin

tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "built $image" >&2
