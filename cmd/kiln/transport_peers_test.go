package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

// TestTransportDockerd pushes to a real dockerd (by --daemon-host and by
// DOCKER_HOST), runs what kiln pushed with docker run, and pulls back
// both kiln's image and one that docker committed itself.
func TestTransportDockerd(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	d := transporttest.StartDockerd(t)
	id := e.mustKiln("inspect", "--format", "{{.FromImageID}}", "localhost/busybox")

	e.mustKiln("push", "-q", "--daemon-host", d.Host, "localhost/busybox", "docker-daemon:kiln-bb:flag")
	e.mustRun("", []string{"DOCKER_HOST=" + d.Host}, "push", "-q", "localhost/busybox", "docker-daemon:kiln-bb:env")
	for _, tag := range []string{"flag", "env"} {
		got := strings.TrimSpace(d.Docker(t, "image", "inspect", "--format", "{{.Id}}", "kiln-bb:"+tag))
		if got != "sha256:"+id {
			t.Errorf("docker sees kiln-bb:%s as %s, want sha256:%s", tag, got, id)
		}
	}
	if out := d.Docker(t, "run", "--rm", "--network", "none", "kiln-bb:env", "/bin/sh", "-c", "echo hello from $(busybox uname -s)"); strings.TrimSpace(out) != "hello from Linux" {
		t.Errorf("docker run of kiln's image printed %q", out)
	}

	d.Docker(t, "run", "--name", "made", "--network", "none", "kiln-bb:env", "/bin/sh", "-c", "echo written-by-docker > /made")
	d.Docker(t, "commit", "--change", "LABEL by=docker", "made", "docker-made:1")
	env := []string{"DOCKER_HOST=" + d.Host}
	back := e.mustRun("", env, "pull", "-q", "docker-daemon:kiln-bb:env")
	if back != id {
		t.Errorf("pulling kiln's image back from docker gave %s, want %s", back, id)
	}
	e.mustRun("", env, "pull", "-q", "docker-daemon:docker-made:1")
	c := e.mustKiln("from", "docker.io/library/docker-made:1")
	mp := e.mustKiln("mount", c)
	if got := strings.TrimSpace(readFile(t, filepath.Join(mp, "made"))); got != "written-by-docker" {
		t.Errorf("file docker wrote reads %q in kiln's container", got)
	}
	if got := e.mustKiln("inspect", "--format", `{{index .OCIv1.Config.Labels "by"}}`, "docker-made:1"); got != "docker" {
		t.Errorf("label of docker's commit: %q", got)
	}
	if errOut := e.fails("push", "--daemon-host", "unix:///nonexistent/docker.sock", "localhost/busybox", "docker-daemon:x:1"); !strings.Contains(errOut, "nonexistent") {
		t.Errorf("push to a daemon that is not there: %q", errOut)
	}
	var info inspectOut
	decodeJSON(t, e.mustKiln("image", "inspect", "--daemon-host", d.Host, "docker-daemon:docker-made:1"), &info)
	if info.Name != "docker.io/library/docker-made" || info.Labels["by"] != "docker" || len(info.Layers) != 2 {
		t.Errorf("image inspect docker-daemon: %+v", info)
	}
}

// podman runs podman with a store of its own, runc, no network and
// cgroupfs, and returns its output.
func podman(t *testing.T, dir string, args ...string) string {
	t.Helper()
	base := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--tmpdir", filepath.Join(dir, "tmp"),
		"--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--storage-driver", "vfs"}
	return runPeer(t, transporttest.NeedBinary(t, "podman"), append(base, args...)...)
}

// TestTransportPodman runs an oci-archive kiln wrote with podman, and
// pulls an oci-archive podman saved.
func TestTransportPodman(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	transporttest.NeedBinary(t, "podman")
	dir := t.TempDir()
	archive := filepath.Join(dir, "bb.tar")
	e.mustKiln("push", "-q", "localhost/busybox", "oci-archive:"+archive+":kiln-bb:1")
	// Podman raises nofile and nproc limits by default; ask for modest ones
	// so that it also runs where kiln's tests lack CAP_SYS_RESOURCE.
	run := []string{"run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"}
	out := podman(t, dir, append(run, "oci-archive:"+archive+":kiln-bb:1", "/bin/sh", "-c", "echo hello from podman")...)
	if !strings.HasSuffix(strings.TrimSpace(out), "hello from podman") {
		t.Errorf("podman run of kiln's oci-archive printed %q", out)
	}
	podman(t, dir, "run", "--name", "made", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
		"oci-archive:"+archive+":kiln-bb:1", "/bin/sh", "-c", "echo written-by-podman > /made")
	podman(t, dir, "commit", "-q", "made", "localhost/podman-made:1")
	saved := filepath.Join(dir, "saved.tar")
	podman(t, dir, "save", "--format", "oci-archive", "-o", saved, "localhost/podman-made:1")
	id := e.mustKiln("pull", "-q", "oci-archive:"+saved)
	c := e.mustKiln("from", id)
	mp := e.mustKiln("mount", c)
	if got := strings.TrimSpace(readFile(t, filepath.Join(mp, "made"))); got != "written-by-podman" {
		t.Errorf("file podman wrote reads %q in kiln's container", got)
	}
}

// TestTransportSkopeo has skopeo copy what kiln wrote (an OCI layout and
// a dir:) and kiln pull what skopeo wrote.
func TestTransportSkopeo(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	skopeo := transporttest.NeedBinary(t, "skopeo")
	dir := t.TempDir()
	id := e.mustKiln("inspect", "--format", "{{.FromImageID}}", "localhost/busybox")
	e.mustKiln("push", "-q", "localhost/busybox", "oci:"+dir+"/kiln:1")
	e.mustKiln("push", "-q", "localhost/busybox", "dir:"+dir+"/kilndir")
	runPeer(t, skopeo, "copy", "-q", "oci:"+dir+"/kiln:1", "docker-archive:"+dir+"/skopeo.tar:skopeo/bb:1")
	runPeer(t, skopeo, "copy", "-q", "dir:"+dir+"/kilndir", "oci:"+dir+"/skopeo-oci:2")
	for _, ref := range []string{"docker-archive:" + dir + "/skopeo.tar", "oci:" + dir + "/skopeo-oci:2"} {
		if got := e.mustKiln("pull", "-q", ref); got != id {
			t.Errorf("kiln pull %s = %s, want %s", ref, got, id)
		}
	}
	if got := e.mustKiln("images", "--format", "{{.Name}}:{{.Tag}}"); !strings.Contains(got, "docker.io/skopeo/bb:1") {
		t.Errorf("a docker-archive's tag did not name the pulled image:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "kilndir", "manifest.json")); err != nil {
		t.Error(err)
	}
}
