#!/usr/bin/env bash
# Runs Buildah 1.28's own system tests (tests/*.bats) against kiln, or
# against buildah itself for comparison, on this machine without the
# internet: image names the tests pull are sent to a local docker-registry
# holding images made from Debian packages (scripts/buildah-tests/images.sh).
#
#   scripts/buildah-tests.sh [--peer kiln|buildah] [--kiln PATH]
#                            [--storage-driver vfs|overlay] [--filter REGEX]
#                            [--isolation oci|chroot|default]
#                            [FILE...]          # from, mount, ..., bud
#   scripts/buildah-tests.sh --compare          # the last kiln and buildah runs side by side
#
# Buildah's tests are not part of this repository: the runner downloads
# Debian's copy of Buildah's source (pinned by sha256) into the work
# directory (KILN_BUILDAH_WORK, default /var/tmp/kiln-buildah-tests) and
# runs them from there. Results go to WORK/results/PEER/FILE.tap (bats'
# TAP, with each failure's output); a table of passed/failed/skipped per
# file is printed. scripts/buildah-tests/expected.tsv lists the tests that
# fail or skip for a reason outside the peer (no internet, an image that
# cannot be made here, ...), with the reason; the runner exits 1 only
# when a test fails that is not listed there.
#
# Both peers run with BUILDAH_ISOLATION=oci (--isolation: chroot, or
# default to leave it unset): Buildah's default is oci, while kiln's is
# chroot when it runs inside a container (as CI machines often are), and
# the tests assume runc (cgroup limits, devices, runtime flags). Buildah's
# own CI (.cirrus.yml) sets BUILDAH_ISOLATION per job the same way.
#
# CI runs it when KILN_BUILDAH_TESTS=1 (scripts/test.sh); it is also the
# nightly script.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

BUILDAH_VERSION=1.28.2
TARBALL=golang-github-containers-buildah_${BUILDAH_VERSION}+ds1.orig.tar.xz
TARBALL_URL=http://deb.debian.org/debian/pool/main/g/golang-github-containers-buildah/$TARBALL
TARBALL_SHA256=94cc5f4979f56dc2f5f425d00fb3094784d5af847036f1a80d7c2e7354597f9e
DEFAULT_FILES="from mount rm rmi tag images containers inspect config copy add commit run pull push"

WORK=${KILN_BUILDAH_WORK:-/var/tmp/kiln-buildah-tests}
PEER=kiln KILN="" DRIVER=vfs FILTER="" COMPARE="" ISOLATION=oci FILES=()
while [ $# -gt 0 ]; do
	case $1 in
	--peer) PEER=$2; shift ;;
	--peer=*) PEER=${1#*=} ;;
	--kiln) KILN=$2; shift ;;
	--kiln=*) KILN=${1#*=} ;;
	--storage-driver) DRIVER=$2; shift ;;
	--storage-driver=*) DRIVER=${1#*=} ;;
	--isolation) ISOLATION=$2; shift ;;
	--isolation=*) ISOLATION=${1#*=} ;;
	--filter) FILTER=$2; shift ;;
	--filter=*) FILTER=${1#*=} ;;
	--compare) COMPARE=1 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "unknown option $1" >&2; exit 2 ;;
	*) FILES+=("${1%.bats}") ;;
	esac
	shift
done
[ ${#FILES[@]} -gt 0 ] || read -r -a FILES <<<"$DEFAULT_FILES"
EXPECTED=$REPO/scripts/buildah-tests/expected.tsv

# summarize DIR FILE: "passed failed skipped" of one TAP file.
summarize() {
	local tap=$1/$2.tap
	[ -s "$tap" ] || { echo "- - -"; return; }
	awk '/^ok .* # skip/ {s++; next} /^ok / {p++} /^not ok / {f++}
		END {printf "%d %d %d\n", p, f, s}' "$tap"
}

if [ -n "$COMPARE" ]; then
	printf '%-12s %25s   %25s\n' "" "buildah pass/fail/skip" "kiln pass/fail/skip"
	for f in "${FILES[@]}"; do
		printf '%-12s %25s   %25s\n' "$f" "$(summarize "$WORK/results/buildah" "$f" | tr ' ' /)" \
			"$(summarize "$WORK/results/kiln" "$f" | tr ' ' /)"
	done
	exit 0
fi
[ "$(id -u)" = 0 ] || { echo "buildah-tests.sh runs as root (the tests mount and run containers)" >&2; exit 2; }

# --- packages --------------------------------------------------------------
pkgs="bats jq curl openssl git busybox-static docker-registry skopeo runc debootstrap xz-utils iproute2 podman netcat-openbsd uuid-runtime"
[ "$PEER" != buildah ] || pkgs="$pkgs buildah"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- the peer --------------------------------------------------------------
mkdir -p "$WORK/cache" "$WORK/results/$PEER"
case $PEER in
kiln)
	if [ -z "$KILN" ]; then
		KILN=$WORK/kiln
		CGO_ENABLED=0 go build -o "$KILN" ./cmd/kiln
	fi
	BINARY=$(readlink -f "$KILN")
	;;
buildah) BINARY=$(command -v buildah) ;;
*) echo "unknown peer $PEER (kiln or buildah)" >&2; exit 2 ;;
esac

# --- Buildah's tests, from Debian's source package -------------------------
if ! echo "$TARBALL_SHA256  $WORK/cache/$TARBALL" | sha256sum -c --quiet >/dev/null 2>&1; then
	curl -sSfL -o "$WORK/cache/$TARBALL.tmp" "$TARBALL_URL"
	echo "$TARBALL_SHA256  $WORK/cache/$TARBALL.tmp" | sha256sum -c --quiet
	mv "$WORK/cache/$TARBALL.tmp" "$WORK/cache/$TARBALL"
fi
SRC=$WORK/src-$PEER
# The tests' scratch dirs: a short path, as podman refuses a run root
# longer than 50 characters (TMPDIR/buildah_tests.XXXXXX/runroot).
SCRATCH=${KILN_BUILDAH_TMP:-/var/tmp/kbt-$PEER}
# A previous run killed halfway may have left mounts under the scratch dirs.
unmount_under() {
	awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r |
		xargs --no-run-if-empty -n1 umount -l 2>/dev/null || true
}
# A few tests mount a tmpfs at this fixed path and leave it when they fail.
clean_fixed_paths() {
	if mountpoint -q /tmp/buildah-test 2>/dev/null; then umount -l /tmp/buildah-test || true; fi
	rm -rf /tmp/buildah-test
}
unmount_under "$SCRATCH"
clean_fixed_paths
rm -rf "$SRC" "$SCRATCH"
mkdir -p "$SRC/bin" "$SCRATCH"
tar -xJf "$WORK/cache/$TARBALL" -C "$SRC" --strip-components=1 \
	"golang-github-containers-buildah-${BUILDAH_VERSION}+ds1/tests"
cp "$REPO"/scripts/buildah-tests/bin/* "$SRC/bin/"
ln -s "$BINARY" "$SRC/bin/buildah"

# --- a registry with the images the tests name -----------------------------
# The images are the same on every run: the registry's data is kept while
# the recipe and the packages it uses are the same.
stamp=$( (cat "$REPO/scripts/buildah-tests/images.sh"; dpkg-query -W busybox-static docker-registry) | sha256sum)
[ "$(cat "$WORK/registry/stamp" 2>/dev/null)" = "$stamp" ] || rm -rf "$WORK/registry"
REGISTRY_PID=""
cleanup() {
	[ -z "$REGISTRY_PID" ] || kill "$REGISTRY_PID" 2>/dev/null || true
	unmount_under "$SCRATCH"
}
trap cleanup EXIT
for attempt in 1 2 3 4 5; do
	port=$((20000 + RANDOM % 40000))
	ss -ltn | awk '{print $4}' | grep -q ":$port\$" && continue
	mkdir -p "$WORK/registry/data"
	cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
	docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
	REGISTRY_PID=$!
	for _ in $(seq 50); do
		curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break 2
		kill -0 "$REGISTRY_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill "$REGISTRY_PID" 2>/dev/null || true
	REGISTRY_PID=""
done
[ -n "$REGISTRY_PID" ] || { echo "could not start docker-registry" >&2; cat "$WORK/registry/log" >&2; exit 1; }
REGISTRY=127.0.0.1:$port
# shellcheck source=scripts/buildah-tests/images.sh
. "$REPO/scripts/buildah-tests/images.sh"
if [ "$(cat "$WORK/registry/stamp" 2>/dev/null)" != "$stamp" ]; then
	img_all
	echo "$stamp" >"$WORK/registry/stamp"
fi

# The tests' registries.conf, with each registry sent to the local one.
{
	echo "unqualified-search-registries = ['docker.io', 'quay.io', 'registry.fedoraproject.org']"
	for host in docker.io quay.io registry.k8s.io registry.fedoraproject.org; do
		printf '\n[[registry]]\nprefix = "%s"\nlocation = "%s/%s"\ninsecure = true\n' "$host" "$REGISTRY" "$host"
	done
	sed -n '/^\[aliases\]/,$p' "$SRC/tests/registries.conf"
} >"$SRC/tests/registries.conf.local"
mv "$SRC/tests/registries.conf.local" "$SRC/tests/registries.conf"

# --- run -------------------------------------------------------------------
export BUILDAH_BINARY=$BINARY COPY_BINARY=$SRC/bin/copy IMGTYPE_BINARY=$SRC/bin/imgtype
export STORAGE_DRIVER=$DRIVER KILN_BT_PEER=$PEER KILN_BT_BINARY=$BINARY TMPDIR=$SCRATCH
case $ISOLATION in
oci | chroot) export BUILDAH_ISOLATION=$ISOLATION ;;
default) unset BUILDAH_ISOLATION ;;
*) echo "unknown isolation $ISOLATION (oci, chroot or default)" >&2; exit 2 ;;
esac
RESULTS=$WORK/results/$PEER
bats_args=(--tap)
[ -z "$FILTER" ] || bats_args+=(--filter "$FILTER")

# expected PEER FILE: "OUTCOME<TAB>TEST" lines listed for this peer.
expected() {
	[ -f "$EXPECTED" ] || return 0
	awk -F'\t' -v peer="$1" -v file="$2" '!/^#/ && NF >= 4 && $1 == file &&
		($2 == peer || $2 == "all") {print $3 "\t" $4}' "$EXPECTED"
}

status=0
printf '%-12s %6s %6s %6s %10s %8s %s\n' file passed failed skipped unexpected listed seconds
for f in "${FILES[@]}"; do
	[ -f "$SRC/tests/$f.bats" ] || { echo "no tests/$f.bats" >&2; status=1; continue; }
	start=$SECONDS
	(cd "$SRC/tests" && timeout --kill-after=60 4h bats "${bats_args[@]}" "$f.bats") \
		>"$RESULTS/$f.tap" 2>&1 || true
	unmount_under "$SCRATCH"
	clean_fixed_paths
	read -r p fl s <<<"$(summarize "$RESULTS" "$f")"
	exp=$(expected "$PEER" "$f")
	# A failure is expected when the test is listed; a listed test that
	# passed is reported so that the list can shrink.
	unexpected=$(sed -n 's/^not ok [0-9]* //p' "$RESULTS/$f.tap" | while IFS= read -r t; do
		grep -qxF "$(printf 'fail\t%s' "$t")" <<<"$exp" || echo "$t"
	done)
	listed_passed=$(grep -E '^ok [0-9]+ ' "$RESULTS/$f.tap" | grep -v ' # skip' | sed 's/^ok [0-9]* //' |
		while IFS= read -r t; do grep -qxF "$(printf 'fail\t%s' "$t")" <<<"$exp" && echo "$t"; done || true)
	nu=$(grep -c . <<<"$unexpected" || true)
	printf '%-12s %6s %6s %6s %10s %8s %s\n' "$f" "$p" "$fl" "$s" "$nu" "$(grep -c . <<<"$exp" || true)" $((SECONDS - start))
	if [ "$nu" -gt 0 ]; then
		status=1
		sed 's/^/    unexpected failure: /' <<<"$unexpected"
	fi
	[ -z "$listed_passed" ] || sed 's/^/    listed as failing but passed: /' <<<"$listed_passed"
done
echo "TAP output with each failure's log: $RESULTS/"
exit $status
