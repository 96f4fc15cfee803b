#!/usr/bin/env bash
# Installs what kiln's demo and tests use, from Debian's packages. Go is
# expected at /usr/local/go or on PATH (Go 1.26).
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
pkgs=(runc umoci skopeo busybox-static docker-registry apache2-utils xfsprogs btrfs-progs make docker.io podman git gcc xz-utils lvm2 uidmap slirp4netns passt gnupg qemu-user-static binfmt-support)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "Go 1.26 is needed: install it at /usr/local/go" >&2; exit 1; }
