#!/usr/bin/env bash
# kiln's main job end to end: install what is needed, build kiln, make a
# busybox base image from Debian's busybox-static, run the Buildah-style
# script with a real `make install`, run the resulting image, then build
# a two-stage Containerfile with `kiln build` and run that image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH=/usr/local/go/bin:$PATH
CGO_ENABLED=0 go build -o kiln ./cmd/kiln
demo=$(mktemp -d /tmp/kiln-demo-XXXXXX)
kiln() { ./kiln --root "$demo/root" --runroot "$demo/run" "$@"; }
trap 'kiln unmount --all >/dev/null 2>&1 || true; rm -rf "$demo"' EXIT

echo "== base image localhost/busybox from busybox-static"
c=$(kiln from scratch)
mp=$(kiln mount "$c")
mkdir -p "$mp/bin" "$mp/etc"
cp /bin/busybox "$mp/bin/busybox"
chroot "$mp" /bin/busybox --install -s /bin
echo 'root:x:0:0:root:/root:/bin/sh' > "$mp/etc/passwd"
echo 'root:x:0:' > "$mp/etc/group"
kiln config --cmd /bin/sh "$c"
kiln commit --rm "$c" localhost/busybox >/dev/null

echo "== a small program, installed with make install DESTDIR=\$mp"
src="$demo/src"
mkdir -p "$src"
printf '#!/bin/sh\necho "hello from kiln: $*"\n' > "$src/hello"
printf 'install:\n\tinstall -D -m 755 hello $(DESTDIR)/usr/local/bin/hello\n' > "$src/Makefile"

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
cat > "$app/Containerfile" <<'EOF'
FROM localhost/busybox AS builder
COPY hello /src/hello
RUN sed 's/hello from kiln/hello from a kiln build/' /src/hello > /hello && chmod 755 /hello
FROM localhost/busybox
COPY --from=builder /hello /usr/local/bin/hello
ENTRYPOINT ["/usr/local/bin/hello"]
EOF
kiln build -t built "$app"
kiln build -t built "$app" | grep -- '--> Using cache' | wc -l | xargs echo "steps from the cache:"
r=$(kiln from built)
kiln run "$r" -- /usr/local/bin/hello "it was built"
kiln rm "$r" >/dev/null
echo "demo OK"
