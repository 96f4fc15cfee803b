package main

import (
	"strings"
	"testing"
)

// nestedDockerBuild is a CI job inside a container: it makes a base
// image, then runs `kiln build` of a two-stage Dockerfile, twice (the
// second from the cache), with the default isolation.
const nestedDockerBuild = `set -eu
k() { kiln --root /store --runroot /run/kiln "$@"; }
c=$(k from scratch)
mp=$(k mount "$c")
mkdir -p "$mp/bin" "$mp/etc"
cp /bin/busybox "$mp/bin/busybox"
for a in sh cat echo id ls; do ln -s busybox "$mp/bin/$a"; done
cp /etc/passwd /etc/group "$mp/etc/"
k commit --rm "$c" localhost/base >/dev/null
mkdir -p /tmp/ctx
cp /ctx/hello.txt /tmp/ctx/
cat > /tmp/ctx/Dockerfile <<'DF'
FROM localhost/base AS builder
COPY hello.txt /src/
RUN cat /src/hello.txt > /artifact && id -u >> /artifact
FROM localhost/base
COPY --from=builder /artifact /app/artifact
RUN mkdir -m 1777 /tmp
USER app
RUN id -u > /tmp/user
CMD ["cat", "/app/artifact"]
DF
k build -q -t localhost/built /tmp/ctx
k build --layers -t localhost/built /tmp/ctx | grep -c 'Using cache'
echo inside-done
`

// TestBuildInsideRuncContainer: kiln build works with kiln itself in a
// container (chroot isolation picked by itself, the store on a volume),
// and the host reads and runs what it built.
func TestBuildInsideRuncContainer(t *testing.T) {
	e := newEnv(t, "")
	out := runNested(t, e, nestedDockerBuild, "built inside\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || len(lines[0]) != 64 || lines[1] != "7" {
		t.Errorf("inside: want the image ID, 7 cached steps, inside-done; got:\n%s", out)
	}
	c := e.mustKiln("from", "localhost/built")
	if got := e.mustKiln("run", "--isolation", "oci", c, "--", "cat", "/app/artifact", "/tmp/user"); got != "built inside\n0\n1000" {
		t.Errorf("host run of the image built inside = %q", got)
	}
	e.mustKiln("rm", c)
}
