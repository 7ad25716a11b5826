#!/usr/bin/env bash
# A Debian 12 base image with Python 3.11, built from a Debian mirror alone (no registry):
#     deploy/docker/debian-base.sh [IMAGE]        (default IMAGE: localhost/chimp-base:bookworm)
# then build with BUILD_BASE_IMAGE=IMAGE in .env (or --build-arg BASE_IMAGE=IMAGE).
# Needs root, debootstrap and podman or docker. Settings from the environment:
#     DEBIAN_MIRROR   default http://deb.debian.org/debian
#     SECURITY_MIRROR default http://deb.debian.org/debian-security (apt in the image gets
#                     bookworm, bookworm-updates and bookworm-security)
#     CACHE_DIR       where the root file system tarball is kept (reused when present)
#     ENGINE          podman or docker (default: whichever is installed, podman first)
set -euo pipefail

image=${1:-localhost/chimp-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
cache=${CACHE_DIR:-/var/cache/chimp-base}
engine=${ENGINE:-$(command -v podman || command -v docker)}
tarball="$cache/debian-bookworm-python3-v2.tar"

mkdir -p "$cache"
if [[ ! -s $tarball ]]; then
    root=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    echo "debootstrap bookworm from $mirror"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
    # The point release debootstrap installs, plus the security updates since.
    chroot "$root" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq' \
        >>"$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
fi
"$engine" import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
echo "$image"
