#!/usr/bin/env bash
# kiln's main job end to end, as a user meets it: install what is needed,
# build kiln, start a local registry and a Docker daemon of the demo's own,
# make a busybox base image with other tools (umoci from Debian's
# busybox-static, pushed by skopeo with gzip layers), pull it with kiln, run
# the Buildah-style script on it with a real `make install`, build a
# two-stage Containerfile on it (then again from the cache), and get the
# result out: pushed to the registry, pushed into the Docker daemon
# (docker-daemon:) and run there by `docker run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH=/usr/local/go/bin:$PATH
CGO_ENABLED=0 go build -o kiln ./cmd/kiln
demo=$(mktemp -d /tmp/kiln-demo-XXXXXX)
pids=()
# Each kiln gets the demo's own (empty) storage.conf, so that a config on
# this host changes nothing here.
: >"$demo/storage.conf"
kiln() { KILN_STORAGE_CONF="$demo/storage.conf" ./kiln --root "$demo/root" --runroot "$demo/run" "$@"; }
cleanup() {
	kiln unmount --all >/dev/null 2>&1 || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	umount -R "$demo/docker" 2>/dev/null || true
	rm -rf "$demo"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== a local registry and a Docker daemon of the demo's own"
reg="127.0.0.1:$(freeport)"
cat >"$demo/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $demo/registry}}
http: {addr: $reg}
EOF
docker-registry serve "$demo/registry.yml" >"$demo/registry.log" 2>&1 &
pids+=($!)
mkdir -p "$demo/docker"
echo '{}' >"$demo/docker/daemon.json"
export DOCKER_HOST="unix://$demo/docker/docker.sock"
dockerd --host "$DOCKER_HOST" --config-file "$demo/docker/daemon.json" --data-root "$demo/docker/data" \
	--exec-root "$demo/docker/exec" --pidfile "$demo/docker/docker.pid" --iptables=false --ip6tables=false \
	--bridge=none --containerd-namespace kiln-demo --containerd-plugins-namespace kiln-demo-plugins \
	--log-level error >"$demo/dockerd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	/usr/bin/docker version >/dev/null 2>&1 && curl -sf "http://$reg/v2/" >/dev/null && break
	sleep 0.2
done

echo "== a busybox base made by umoci and pushed to $reg by skopeo (not by kiln)"
rootfs="$demo/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc"
cp /bin/busybox "$rootfs/bin/busybox"
chroot "$rootfs" /bin/busybox --install -s /bin
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"
umoci init --layout "$demo/layout"
umoci new --image "$demo/layout:busybox"
umoci unpack --image "$demo/layout:busybox" "$demo/bundle" >/dev/null
rm -rf "$demo/bundle/rootfs" && cp -a "$rootfs" "$demo/bundle/rootfs"
umoci repack --image "$demo/layout:busybox" "$demo/bundle"
umoci config --image "$demo/layout:busybox" --config.cmd /bin/sh
skopeo copy -q --dest-tls-verify=false --format v2s2 "oci:$demo/layout:busybox" "docker://$reg/library/busybox:latest"
kiln pull -q --tls-verify=false "$reg/library/busybox"
kiln tag "$reg/library/busybox" localhost/busybox

echo "== a small program, installed with make install DESTDIR=\$mp"
src="$demo/src"
mkdir -p "$src"
printf '#!/bin/sh\necho "hello from kiln: $*"\n' >"$src/hello"
printf 'install:\n\tinstall -D -m 755 hello $(DESTDIR)/usr/local/bin/hello\n' >"$src/Makefile"

c=$(kiln from localhost/busybox)
mp=$(kiln mount "$c")
kiln config --label maintainer="A <a@example.com>" "$c"
make -s -C "$src" install DESTDIR="$mp"
chroot "$mp" /bin/sh -c '/usr/local/bin/hello -v'
kiln config --entrypoint /usr/local/bin/hello "$c"
kiln commit --format docker "$c" hello
kiln unmount "$c"
kiln rm "$c"

echo "== the result"
kiln images
r=$(kiln from hello)
kiln run "$r" -- /usr/local/bin/hello "it runs"
kiln rm "$r" >/dev/null

echo "== kiln build: a two-stage Containerfile, then the same build from the cache"
app="$demo/app"
mkdir -p "$app"
cp "$src/hello" "$app/hello"
cat >"$app/Containerfile" <<'EOF'
FROM localhost/busybox AS builder
COPY hello /src/hello
RUN sed 's/hello from kiln/hello from a kiln build/' /src/hello > /hello && chmod 755 /hello
FROM localhost/busybox
COPY --from=builder /hello /usr/local/bin/hello
ENTRYPOINT ["/usr/local/bin/hello"]
EOF
kiln build -t built "$app"
kiln build --layers -t built "$app" | grep -- '--> Using cache' | wc -l | xargs echo "steps from the cache:"
r=$(kiln from built)
kiln run "$r" -- /usr/local/bin/hello "it was built"
kiln rm "$r" >/dev/null

echo "== getting it out: to the registry, and into the Docker daemon"
kiln push -q --tls-verify=false built "docker://$reg/demo/built:latest"
skopeo inspect --tls-verify=false --raw "docker://$reg/demo/built:latest" | python3 -c '
import json, sys
base = json.load(open(sys.argv[1]))["layers"][0]["digest"]
layers = json.load(sys.stdin)["layers"]
assert layers[0]["digest"] == base, "the base layer was not sent as the blob skopeo pushed"
print("pushed with the base layer as skopeo pushed it:", base[:19])
' <(skopeo inspect --tls-verify=false --raw "docker://$reg/library/busybox:latest")
kiln push -q built docker-daemon:kiln-demo/built:latest
/usr/bin/docker run --rm --network none kiln-demo/built:latest "it runs in docker"
echo "demo OK"
