package testbase

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

// dockerName is the name the Docker kind has in the daemon that built it
// and in its docker save tarball.
const dockerName = "testbase/docker:latest"

// Dockerfile is what docker build runs for the Docker kind, on the
// imported busybox rootfs (named by the FROM line's build arg). The
// classic builder runs it with --network none.
const Dockerfile = `ARG BASE
FROM $BASE
ENV ` + DefaultPath + `
ENV BUILT_BY=docker
RUN mkdir -p /opt/built && echo built-by-docker > /opt/built/by && ln /opt/built/by /opt/built/hard && rm /etc/group
COPY hello.txt /opt/built/hello.txt
RUN cp /etc/passwd /etc/passwd.bak && echo 'root:x:0:' > /etc/group && echo 'app:x:1000:' >> /etc/group && echo 'staff:x:50:' >> /etc/group
WORKDIR /opt/built
LABEL made-by=docker
CMD ["/bin/sh"]
`

// dockerSave returns the docker save tarball of the Docker kind, made
// once per test binary by a dockerd of its own (stopped when the test
// that made it ends).
func dockerSave(t testing.TB) string {
	t.Helper()
	needRoot(t, "dockerd", "tar")
	tarball := RootfsTar(t)
	return filepath.Join(cached(t, "docker", func(t testing.TB, dir string) {
		d := transporttest.StartDockerd(t)
		d.Docker(t, "import", "-c", `CMD ["/bin/sh"]`, tarball, "testbase/import:latest")
		ctx := filepath.Join(dir, "context")
		mustT(t, os.MkdirAll(ctx, 0o755))
		mustT(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(Dockerfile), 0o644))
		mustT(t, os.WriteFile(filepath.Join(ctx, "hello.txt"), []byte("hello from COPY\n"), 0o644))
		cmd := d.Command("build", "--network", "none", "--build-arg", "BASE=testbase/import:latest", "-t", dockerName, ctx)
		cmd.Env = append(cmd.Env, "DOCKER_BUILDKIT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker build: %v\n%s", err, out)
		}
		d.Docker(t, "save", "-o", filepath.Join(dir, "docker.tar"), dockerName)
	}), "docker.tar")
}
