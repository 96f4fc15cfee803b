#!/usr/bin/env bash
# Makes the users the rootless tests (cmd/kiln/rootless_test.go) run kiln
# as, and what they need; idempotent, as root. kiln-rootless has
# subordinate ranges in /etc/subuid and /etc/subgid; kiln-norange has
# none (the single-ID mapping and its note).
set -euo pipefail
add_range() { # user file option
	grep -q "^$1:" "$2" 2>/dev/null || usermod "$3" 100000-165535 "$1"
}
id kiln-rootless >/dev/null 2>&1 || useradd --create-home --shell /bin/sh kiln-rootless
add_range kiln-rootless /etc/subuid --add-subuids
add_range kiln-rootless /etc/subgid --add-subgids
id kiln-norange >/dev/null 2>&1 || useradd --create-home --shell /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 kiln-norange
# pasta and slirp4netns open /dev/net/tun, which udev makes 0666 on
# Debian; a machine without udev's rules leaves it 0600.
if [ -c /dev/net/tun ]; then chmod 0666 /dev/net/tun; fi
