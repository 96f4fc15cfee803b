package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/testenv"
)

// TestIsolationFromEnvironment: BUILDAH_ISOLATION is the default of from
// and run --isolation, as in Buildah (build already read it): from
// records it for the container's later runs, and run, given no
// --isolation and a container that recorded none, uses it.
func TestIsolationFromEnvironment(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustRun("", []string{"BUILDAH_ISOLATION=chroot"}, "from", "-q", "localhost/busybox")
	if got := e.mustKiln("inspect", "--format", "{{.Isolation}}", c); got != "chroot" {
		t.Errorf("from with BUILDAH_ISOLATION=chroot recorded isolation %q, want chroot", got)
	}
	plain := e.mustKiln("from", "-q", "localhost/busybox")
	_, errOut, code := e.run("", []string{"BUILDAH_ISOLATION=bogus"}, "run", plain, "true")
	if code != 125 || !strings.Contains(errOut, `"bogus"`) {
		t.Errorf("run with BUILDAH_ISOLATION=bogus: exit %d, %q; want 125 naming the isolation", code, errOut)
	}
	// The container's own isolation comes before the environment's.
	if out, errOut, code := e.run("", []string{"BUILDAH_ISOLATION=bogus"}, "run", c, "echo", "ok"); code != 0 || out != "ok" {
		t.Errorf("run of a chroot container with BUILDAH_ISOLATION=bogus: exit %d, %q, %q", code, out, errOut)
	}
}

// TestContainersFormatWholeIDs: `containers --format` gets whole IDs, as
// Buildah's (only its table truncates them), so that a script compares
// them with commit's .Docker.Container and inspect's ContainerID.
func TestContainersFormatWholeIDs(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	id := e.mustKiln("inspect", "--format", "{{.ContainerID}}", c)
	if len(id) != 64 {
		t.Fatalf("inspect ContainerID = %q", id)
	}
	if got := e.mustKiln("containers", "--format", "{{.ContainerID}}"); got != id {
		t.Errorf("containers --format {{.ContainerID}} = %q, want %q", got, id)
	}
	if got := e.mustKiln("containers", "--noheading"); !strings.HasPrefix(got, id[:12]+" ") && !strings.HasPrefix(got, id[:12]+"\t") {
		t.Errorf("containers table row = %q, want it to start with the short ID %s", got, id[:12])
	}
	e.mustKiln("commit", "-q", "--format", "docker", c, "localhost/committed")
	if got := e.mustKiln("inspect", "--type", "image", "--format", "{{.Docker.Container}}", "localhost/committed"); got != id {
		t.Errorf(".Docker.Container = %q, want the container's ID %q", got, id)
	}
}

// TestCopySymlinkSource: a source given on the command line that is a
// symlink is followed, as Buildah does: a link to a file copies the
// file's content under the link's name (also one named like an archive,
// which copy does not unpack), a link to a directory copies the
// directory's content.
func TestCopySymlinkSource(t *testing.T) {
	e := newEnv(t, "vfs")
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "randomfile"), []byte("random content"), 0o644))
	must(t, os.Symlink(filepath.Join(dir, "randomfile"), filepath.Join(dir, "link-randomfile")))
	must(t, os.Symlink(filepath.Join(dir, "randomfile"), filepath.Join(dir, "link-randomfile.tar.gz")))
	must(t, os.Mkdir(filepath.Join(dir, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "d", "inner"), []byte("inner"), 0o644))
	must(t, os.Symlink("d", filepath.Join(dir, "link-d")))

	c := e.mustKiln("from", "scratch")
	e.mustKiln("config", "--workingdir", "/", c)
	e.mustKiln("copy", c, filepath.Join(dir, "link-randomfile"))
	e.mustKiln("copy", c, filepath.Join(dir, "link-randomfile.tar.gz"))
	e.mustKiln("copy", c, filepath.Join(dir, "link-d"), "/linked-dir")
	e.mustKiln("commit", "-q", c, "localhost/new-image")
	n := e.mustKiln("from", "-q", "localhost/new-image")
	root := e.mustKiln("mount", n)
	for path, want := range map[string]string{
		"link-randomfile": "random content", "link-randomfile.tar.gz": "random content", "linked-dir/inner": "inner",
	} {
		fi, err := os.Lstat(filepath.Join(root, path))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("/%s: %v, %v; want a regular file", path, fi, err)
			continue
		}
		if got, _ := os.ReadFile(filepath.Join(root, path)); string(got) != want {
			t.Errorf("/%s = %q, want %q", path, got, want)
		}
	}
}

// TestBuildahShorthandsAndWords: config takes Buildah's -u (--user) and
// -a (--annotation); run without a command says Buildah's "command must
// be specified" (exit 125), whatever the image's entrypoint and cmd; run
// --user of a user the image lacks says "unknown user error".
func TestBuildahShorthandsAndWords(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	e.mustKiln("config", "-u", "app", "-a", "note=yes", c)
	if got := e.mustKiln("inspect", "--format", `{{.Config.Config.User}} {{index .ImageAnnotations "note"}}`, c); got != "app yes" {
		t.Errorf("config -u app -a note=yes: user and annotation %q", got)
	}
	e.mustKiln("config", "-u", "", "--entrypoint", "/bin/echo", c)
	for _, args := range [][]string{{"run", c}, {"run", c, "--"}} {
		if _, errOut, code := e.kiln(args...); code != 125 || !strings.Contains(errOut, "command must be specified") {
			t.Errorf("kiln %v: exit %d, %q", args, code, errOut)
		}
	}
	if _, errOut, code := e.kiln("run", "--user", "noexist", c, "true"); code != 125 || !strings.Contains(errOut, `unknown user error looking up user "noexist"`) {
		t.Errorf("run --user noexist: exit %d, %q", code, errOut)
	}
}

// TestFullDiskWords: a store on a filesystem with no room left fails
// (exit 125) saying "no space left on device", as Buildah does, also when
// what failed first is the store's database ("database or disk is
// full").
func TestFullDiskWords(t *testing.T) {
	requiresRoot(t)
	dir := t.TempDir()
	must(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"))
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	f, err := os.Create(filepath.Join(dir, "full"))
	must(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	e := &env{t: t, root: t.TempDir()}
	_, errOut, code := e.kiln("--root", filepath.Join(dir, "root"), "images")
	if code != 125 || !strings.Contains(errOut, "no space left on device") {
		t.Errorf("kiln on a full filesystem: exit %d, %q", code, errOut)
	}
}

// TestRunHostsNamesContainer: the generated /etc/hosts gives the
// hostname's address the working container's name too, as Buildah's does
// (its from-image-by-id test looks for ID-working-container there).
func TestRunHostsNamesContainer(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	id := e.mustKiln("inspect", "--format", "{{.ContainerID}}", c)
	hosts := e.mustKiln("run", c, "cat", "/etc/hosts")
	if want := "127.0.1.1\t" + id[:12] + " " + c; !strings.Contains(hosts, want) {
		t.Errorf("/etc/hosts = %q, want a line %q", hosts, want)
	}
}

// TestCopyContextDirAndURL: with --contextdir, copy's sources are inside
// the context directory as Buildah's are ("/" is the directory itself,
// an absolute path under it is taken relative to it) and its ignore file
// applies; copy (not only add) fetches an http(s) URL, keeping the
// server's Last-Modified as the file's time.
func TestCopyContextDirAndURL(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	ctxDir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(ctxDir, "test_file"), []byte("kept"), 0o644))
	must(t, os.WriteFile(filepath.Join(ctxDir, "excluded_test_file"), []byte("left out"), 0o644))
	must(t, os.WriteFile(filepath.Join(ctxDir, ".dockerignore"), []byte("excluded_test_file\n.dockerignore\n"), 0o644))
	c := e.mustKiln("from", "-q", "localhost/busybox")
	e.mustKiln("copy", "--contextdir", ctxDir, c, "/", "/opt/")
	e.mustKiln("copy", "--contextdir", ctxDir, c, filepath.Join(ctxDir, "test_file"), "/abs/")
	mp := e.mustKiln("mount", c)
	entries, err := os.ReadDir(filepath.Join(mp, "opt"))
	must(t, err)
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	if strings.Join(names, ",") != "test_file" {
		t.Errorf("copy --contextdir DIR / /opt/ copied %v, want [test_file]", names)
	}
	if got, err := os.ReadFile(filepath.Join(mp, "abs", "test_file")); err != nil || string(got) != "kept" {
		t.Errorf("absolute source under --contextdir: %q, %v", got, err)
	}

	modified := time.Date(2019, 10, 31, 1, 23, 45, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "randomfile", modified, strings.NewReader("from the server"))
	}))
	defer srv.Close()
	e.mustKiln("copy", c, srv.URL+"/randomfile", "/urlfile")
	fi, err := os.Stat(filepath.Join(mp, "urlfile"))
	if err != nil {
		t.Fatalf("copy of a URL: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(mp, "urlfile")); string(got) != "from the server" || !fi.ModTime().Equal(modified) {
		t.Errorf("copy of a URL: %q, mtime %v; want the server's content and %v", got, fi.ModTime(), modified)
	}
}

// TestDockerContainerConfig: a Docker-format commit records its config as
// container_config too, as Buildah does, so that .Docker.ContainerConfig
// (its health check, say) reads as Buildah's images have it, also in an
// image built on one.
func TestDockerContainerConfig(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	e.mustKiln("config", "--healthcheck", "CMD curl --fail http://localhost:3000 || exit 1", c)
	e.mustKiln("commit", "-q", "--format", "docker", c, "localhost/health")
	c2 := e.mustKiln("from", "-q", "localhost/health")
	e.mustKiln("commit", "-q", "--format", "docker", c2, "localhost/health2")
	for _, img := range []string{"localhost/health", "localhost/health2"} {
		got := e.mustKiln("inspect", "--type", "image", "--format", "{{.Docker.ContainerConfig.Healthcheck.Test}}", img)
		if !strings.Contains(got, "localhost:3000") {
			t.Errorf("%s: .Docker.ContainerConfig.Healthcheck.Test = %q", img, got)
		}
	}
}

// TestCopyNoDestination: copy or add without a destination copies into
// the working directory, made as a directory when it is missing, as
// Buildah's does (kiln made a file of that name).
func TestCopyNoDestination(t *testing.T) {
	e := newEnv(t, "vfs")
	src := filepath.Join(t.TempDir(), "randomfile")
	must(t, os.WriteFile(src, []byte("random"), 0o644))
	c := e.mustKiln("from", "scratch")
	e.mustKiln("config", "--workingdir", "/cwd", c)
	e.mustKiln("add", c, src)
	mp := e.mustKiln("mount", c)
	if got, err := os.ReadFile(filepath.Join(mp, "cwd", "randomfile")); err != nil || string(got) != "random" {
		t.Errorf("/cwd/randomfile: %q, %v", got, err)
	}
}

// TestRunPrimaryGroupInGroups: run --user UID:GID has GID among its
// supplementary groups too, as Buildah's run does.
func TestRunPrimaryGroupInGroups(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	status := e.mustKiln("run", "--user", "1000:1000", c, "cat", "/proc/self/status")
	if !strings.Contains(status, "Groups:\t1000 ") {
		t.Errorf("run --user 1000:1000: /proc/self/status has no 'Groups:\\t1000 ':\n%s", status)
	}
}

// TestRunRuntimeDebug: run --runtime-flag debug shows the runtime's debug
// log, as Buildah's run does (kiln kept it in the bundle's log file).
func TestRunRuntimeDebug(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	testenv.NeedBinary(t, "runc")
	c := e.mustKiln("from", "-q", "localhost/busybox")
	_, errOut, code := e.kiln("run", "--isolation", "oci", "--runtime", "runc", "--runtime-flag", "debug", c, "true")
	if code != 0 || !strings.Contains(errOut, "level") {
		t.Errorf("run --runtime-flag debug: exit %d, stderr %q; want runc's debug log", code, errOut)
	}
	// So does a quiet build's RUN (bud 'with --runtime and --runtime-flag').
	dir := dockerfileDir(t, "FROM localhost/busybox\nRUN echo hello\n")
	_, errOut, code = e.kiln("build", "--isolation", "oci", "--runtime", "runc", "--runtime-flag", "debug", "-q", dir)
	if code != 0 || !regexp.MustCompile(`level=debug.*msg=.child process in init`).MatchString(errOut) {
		t.Errorf("build -q --runtime-flag debug: exit %d, stderr %q; want runc's debug log", code, errOut)
	}
}

// TestRunMakesImageVolumes: run makes the image's volume directories that
// its layers lack, as Buildah's run does (Buildah's
// run-builtin-volume-omitted test).
func TestRunMakesImageVolumes(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	e.mustKiln("config", "--volume", "/var/lib/registry", c)
	mp := e.mustKiln("mount", c)
	if _, err := os.Stat(filepath.Join(mp, "var/lib/registry")); err == nil {
		t.Fatal("the volume's directory is there before the run")
	}
	if out := e.mustKiln("run", c, "ls", "-1", "/var/lib"); !strings.Contains(out, "registry") {
		t.Errorf("ls /var/lib in the run: %q, want registry", out)
	}
	if fi, err := os.Stat(filepath.Join(mp, "var/lib/registry")); err != nil || !fi.IsDir() {
		t.Errorf("the volume's directory after the run: %v, %v", fi, err)
	}
}

// TestRegistrySourcesCLI: BUILD_REGISTRY_SOURCES keeps registries out of
// pull, push and commit, in Buildah's words.
func TestRegistrySourcesCLI(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	blocked := []string{`BUILD_REGISTRY_SOURCES={"blockedRegistries": ["registry.example.com"]}`}
	allowed := []string{`BUILD_REGISTRY_SOURCES={"allowedRegistries": ["some-other-registry.example.com"]}`}
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{blocked, []string{"commit", c, "docker://registry.example.com/busierbox"}, `commit to registry at "registry.example.com" denied by policy: it is in the blocked registries list`},
		{allowed, []string{"commit", c, "docker://registry.example.com/busierbox"}, `commit to registry at "registry.example.com" denied by policy: not in allowed registries list`},
		{allowed, []string{"push", "localhost/busybox", "docker://registry.example.com/evenbusierbox"}, `registry "registry.example.com" denied by policy: not in allowed registries list`},
		{blocked, []string{"pull", "registry.example.com/busybox"}, `registry "registry.example.com" denied by policy: it is in the blocked registries list`},
		{[]string{"BUILD_REGISTRY_SOURCES={bad"}, []string{"pull", "registry.example.com/busybox"}, `$BUILD_REGISTRY_SOURCES: parsing registry sources`},
	} {
		_, errOut, code := e.run("", tc.env, tc.args...)
		if code != 125 || !strings.Contains(errOut, tc.want) {
			t.Errorf("kiln %v with %v: exit %d, %q; want 125 and %q", tc.args, tc.env, code, errOut, tc.want)
		}
	}
}

// TestPullLocalShortName: a short name that a stored image has is pulled
// by that name (localhost/image:latest), not looked for in the search
// registries, as Buildah resolves it; the error names the source as
// containers/image does.
func TestPullLocalShortName(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	e.mustKiln("tag", "localhost/busybox", "localhost/image")
	_, errOut, code := e.kiln("pull", "--policy=always", "image")
	if code != 125 || !strings.Contains(errOut, "initializing source docker://localhost/image:latest") {
		t.Errorf("pull --policy=always image: exit %d, %q", code, errOut)
	}
}

// TestConfigHealthcheckDurationWords: a bad health check duration is
// refused in Buildah's words.
func TestConfigHealthcheckDurationWords(t *testing.T) {
	e := newEnv(t, "vfs")
	c := e.mustKiln("from", "scratch")
	_, errOut, code := e.kiln("config", "--healthcheck-interval", "ABCD", c)
	if code != 125 || !strings.Contains(errOut, `parsing --healthcheck-interval "ABCD": time: invalid duration "ABCD"`) {
		t.Errorf("config --healthcheck-interval ABCD: exit %d, %q", code, errOut)
	}
	e.mustKiln("config", "--healthcheck", "CMD true", "--healthcheck-interval", "5s", c)
	if got := e.mustKiln("inspect", "--format", "{{.Config.Config.Healthcheck.Interval}}", c); got != "5000000000" && got != "5s" {
		t.Errorf("health check interval = %q, want 5s", got)
	}
}

// TestRunContainerEnv: a run sees /run/.containerenv naming the engine,
// the container and its image, as Buildah's runs do; the file (and a /run
// the image lacked) is not left in the container.
func TestRunContainerEnv(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	out := e.mustKiln("run", c, "cat", "/run/.containerenv")
	for _, want := range []string{`engine="kiln-`, `name="` + c + `"`, `image="localhost/busybox:latest"`} {
		if !strings.Contains(out, want) {
			t.Errorf("/run/.containerenv = %q, want %s in it", out, want)
		}
	}
	mp := e.mustKiln("mount", c)
	if _, err := os.Lstat(filepath.Join(mp, "run")); err == nil {
		t.Error("the run left /run in the container")
	}
}

// TestFromBaseAnnotations: a commit of a working container carries the
// base image's digest and name as OCI annotations, as Buildah's from
// records them; a container from scratch has none.
func TestFromBaseAnnotations(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	digest := e.mustKiln("inspect", "--format", "{{.FromImageDigest}}", c)
	e.mustKiln("commit", "-q", c, "localhost/derived")
	for key, want := range map[string]string{
		"org.opencontainers.image.base.digest": digest,
		"org.opencontainers.image.base.name":   "localhost/busybox:latest",
	} {
		if got := e.mustKiln("inspect", "--format", `{{index .ImageAnnotations "`+key+`"}}`, "localhost/derived"); got != want || want == "" {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	s := e.mustKiln("from", "-q", "scratch")
	if got := e.mustKiln("inspect", "--format", "{{.ImageAnnotations}}", s); got != "map[]" {
		t.Errorf("a container from scratch has annotations %s", got)
	}
}

// TestPullDefaultPolicyMissing: pull's default policy is missing, as
// Buildah's: an image the store has is not looked for again, so a
// registry BUILD_REGISTRY_SOURCES keeps out is not contacted for it.
func TestPullDefaultPolicyMissing(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	id := e.mustKiln("images", "-q", "--no-trunc", "localhost/busybox")
	out := e.mustRun("", []string{`BUILD_REGISTRY_SOURCES={"allowedRegistries": ["some-other-registry.example.com"]}`}, "pull", "-q", "localhost/busybox")
	if !strings.HasSuffix(id, out) {
		t.Errorf("pull of a stored image = %q, want its ID %q", out, id)
	}
	if _, errOut, code := e.kiln("pull", "-q", "--policy", "always", "--retry", "0", "localhost/busybox"); code != 125 || !strings.Contains(errOut, "localhost/busybox") {
		t.Errorf("pull --policy always of an image only the store has: exit %d, %q", code, errOut)
	}
}
