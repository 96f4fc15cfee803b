package main

import (
	"bytes"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testbase"
)

// TestBuildCLI: the build verb as Buildah users call it: bud alias, a
// Containerfile found in the context, -t, -q prints only the ID,
// --iidfile, --build-arg, -f - and a tar context on stdin; the image
// runs with kiln run.
func TestBuildCLI(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM localhost/busybox\nARG WHO=nobody\nCOPY msg /msg\nRUN echo \"$WHO\" >> /msg\nCMD [\"cat\", \"/msg\"]\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "msg"), []byte("hello\n"), 0o644))
	iid := filepath.Join(t.TempDir(), "iid")
	out := e.mustKiln("bud", "-t", "greet", "--build-arg", "WHO=kiln", "--iidfile", iid, dir)
	if !strings.Contains(out, "STEP 1/5: FROM localhost/busybox") || !strings.Contains(out, "Successfully tagged localhost/greet:latest") {
		t.Errorf("build output:\n%s", out)
	}
	id := out[strings.LastIndex(out, "\n")+1:]
	if b, _ := os.ReadFile(iid); string(b) != "sha256:"+id {
		t.Errorf("iidfile %q, printed ID %q", b, id)
	}
	q := e.mustKiln("build", "-q", "-t", "greet", "--build-arg", "WHO=kiln", dir)
	if q != id {
		t.Errorf("-q printed %q, want only %q", q, id)
	}
	c := e.mustKiln("from", "greet")
	if got := e.mustKiln("run", c, "--", "cat", "/msg"); got != "hello\nkiln" {
		t.Errorf("run: %q", got)
	}

	var tarball bytes.Buffer
	tarCmd := exec.Command("tar", "-C", dir, "-c", ".")
	tarCmd.Stdout = &tarball
	must(t, tarCmd.Run())
	sout, serr, code := e.run(tarball.String(), nil, "build", "-q", "--build-arg", "WHO=kiln", "-")
	if code != 0 || strings.TrimSpace(sout) != id {
		t.Errorf("tar context on stdin: exit %d, %q (want %s): %s", code, sout, id, serr)
	}
	sout, serr, code = e.run("FROM localhost/busybox\nRUN echo from-stdin > /f\n", nil, "build", "-q", "-f", "-", dir)
	if code != 0 || len(strings.TrimSpace(sout)) != 64 {
		t.Errorf("-f -: exit %d, %q: %s", code, sout, serr)
	}
}

// TestBuildBadInput: errors name the file and line or the step; a failing
// RUN passes its exit status through; nothing is left behind.
func TestBuildBadInput(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	cases := []struct {
		name, dockerfile string
		args             []string
		code             int
		msg              string
	}{
		{"syntax", "FROM localhost/busybox\nBOGUS x\n", nil, 125, "Dockerfile:2: unknown instruction: BOGUS"},
		{"target", "FROM localhost/busybox AS a\n", []string{"--target", "nope"}, 125, `--target "nope" names no stage`},
		{"missing file", "FROM localhost/busybox\nCOPY nothere /\n", nil, 125, "nothere"},
		{"failing run", "FROM localhost/busybox\nRUN exit 4\n", nil, 4, `building at STEP "RUN exit 4"`},
		{"missing image", "FROM localhost/does-not-exist\n", []string{"--pull=never"}, 125, "does-not-exist"},
		{"bad format", "FROM localhost/busybox\n", []string{"--format", "tarball"}, 125, "tarball"},
		{"copy flag without value", "FROM localhost/busybox\nCOPY --chown 1:1 Dockerfile /d\n", nil, 125, "Dockerfile:2: COPY only supports the --chmod=<permissions> --chown=<uid:gid> and the --from=<image|stage> flags"},
		{"add flag without value", "FROM localhost/busybox\nADD --chmod Dockerfile /d\n", nil, 125, "ADD only supports the --chmod=<permissions> and the --chown=<uid:gid> flags"},
		{"unknown chown user", "FROM localhost/busybox\nCOPY --chown=${BOGUS}:${BOGUS} Dockerfile /d\n", nil, 125, `looking up UID/GID for ":": can't find uid for user `},
		{"missing authfile", "FROM localhost/busybox\n", []string{"--authfile", "/nonexistent/auth.json"}, 125, "checking authfile: stat /nonexistent/auth.json"},
		{"outside the context", "FROM localhost/busybox\nCOPY ../up.txt /\n", nil, 125, "escaping context directory error"},
		{"mount from empty", "FROM localhost/busybox\nRUN --mount=type=bind,source=.,from=,target=/test true\n", nil, 125, "from points to an empty value"},
		{"no glob matches", "FROM localhost/busybox\nCOPY *.nomatch *.none /d/\n", nil, 125, `copy source "*.nomatch": no such file or directory`},
		{"from this stage", "FROM localhost/busybox AS build\nCOPY --from=build /bin/sh /x\n", nil, 125, "COPY --from=build: no stage or image found with that name"},
		{"copy of a URL", "FROM localhost/busybox\nCOPY https://example.com/index.html .\n", nil, 125, "source can't be a URL for COPY"},
		{"failing run, as written", "FROM localhost/busybox\nrun grep \"x\" /none\n", nil, 2, `building at STEP "RUN grep "x" /none"`},
		{"bad tag", "FROM localhost/busybox\n", []string{"--tag", "TEST1"}, 125, "tag TEST1: invalid reference format: repository name must be lowercase"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := dockerfileDir(t, tc.dockerfile)
			_, errOut, code := e.kiln(append(append([]string{"build"}, tc.args...), dir)...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d (want %d), stderr %q (want it to contain %q)", code, tc.code, errOut, tc.msg)
			}
		})
	}
	// A git context that cannot be cloned exits with git's status, as Buildah.
	if _, errOut, code := e.kiln("build", "git:///nonexistent/no-such-repository"); code != 128 || !strings.Contains(errOut, "failed while performing `git fetch`") || strings.Count(errOut, "exit status 128") != 1 {
		t.Errorf("git context: exit %d: %s", code, errOut)
	}
	if out := e.mustKiln("containers", "-q"); out != "" {
		t.Errorf("containers left after failed builds: %s", out)
	}
	if _, _, code := e.kiln("build", "-q", t.TempDir()); code != 125 {
		t.Errorf("a context without a Dockerfile: exit %d, want 125", code)
	}
}

// TestBuildInterrupt: Ctrl-C in a RUN stops the build within seconds,
// leaves no container or mount behind, and the next build works.
func TestBuildInterrupt(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := dockerfileDir(t, "FROM localhost/busybox\nRUN sleep 60\n")
	cmd := e.command("build", dir)
	must(t, cmd.Start())
	time.Sleep(1500 * time.Millisecond)
	must(t, cmd.Process.Signal(os.Interrupt))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("interrupted build exited 0")
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("build did not stop within 20 s of SIGINT")
	}
	if out := e.mustKiln("containers", "-q"); out != "" {
		t.Errorf("containers left: %s", out)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), e.root) {
		t.Errorf("mounts left under %s", e.root)
	}
	must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM localhost/busybox\nRUN echo ok\n"), 0o644))
	e.mustKiln("build", "-q", dir)
}

// TestBuildRemoteCache: a build on one store sends its steps to a
// registry with --cache-to; a build on another store that never shared a
// disk with it takes every step from there with --cache-from and makes
// the same image.
func TestBuildRemoteCache(t *testing.T) {
	reg := plainRegistry(t)
	base := testbase.Push(t, reg, testbase.Spec{Kind: testbase.Busybox})
	a := newEnv(t, "")
	dir := dockerfileDir(t, "FROM "+base.Name+"\nCOPY f /f\nRUN cat /f > /g\nENV X=1\n")
	must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("data\n"), 0o644))
	a.mustKiln("pull", "-q", "--tls-verify=false", base.Ref)
	idA := a.mustKiln("build", "-q", "--tls-verify=false", "--cache-to", reg+"/cache", dir)

	b := newEnv(t, "")
	out := b.mustKiln("build", "--layers", "--tls-verify=false", "--cache-from", reg+"/cache", dir)
	if n := strings.Count(out, "Using cache"); n != 3 {
		t.Errorf("--cache-from: %d steps from the cache, want 3:\n%s", n, out)
	}
	if idB := out[strings.LastIndex(out, "\n")+1:]; idB != idA {
		t.Errorf("store B built %s, store A %s", idB, idA)
	}
}

// TestBuildFlags: --label/--annotation on the final image, --squash,
// --output local and tar, --build-context, -v for RUN, and the warning
// for a build arg nothing uses.
func TestBuildFlags(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir, extra, vol := t.TempDir(), t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(extra, "x.txt"), []byte("from a named context\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(vol, "v.txt"), []byte("from a volume\n"), 0o644))
	df := "FROM localhost/busybox\nCOPY --from=extra x.txt /x.txt\nRUN cat /vol/v.txt > /v.txt\nRUN echo two > /two\n"
	must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644))
	outDir, outTar := t.TempDir(), filepath.Join(t.TempDir(), "out.tar")
	_, errOut, code := e.kiln("build", "-q", "-t", "flags", "--label", "l=1", "--annotation", "a=2", "--squash",
		"--build-context", "extra="+extra, "-v", vol+":/vol:ro", "--build-arg", "UNUSED=1",
		"--output", "type=local,dest="+outDir, "--output", "type=tar,dest="+outTar, dir)
	if code != 0 {
		t.Fatalf("build: exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "UNUSED") {
		t.Errorf("no warning about the unused build arg: %q", errOut)
	}
	if got := e.mustKiln("inspect", "--format", "{{.OCIv1.Config.Labels}} {{len .OCIv1.RootFS.DiffIDs}} {{index .ImageAnnotations \"a\"}} {{index .ImageAnnotations \"org.opencontainers.image.base.name\"}}", "flags"); got != "map[l:1] 1 2 localhost/busybox:latest" {
		t.Errorf("labels, layer count, annotations = %q", got)
	}
	for _, f := range []string{"x.txt", "v.txt", "two", "bin/busybox"} {
		if _, err := os.Stat(filepath.Join(outDir, f)); err != nil {
			t.Errorf("--output local: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(outDir, "vol")); err == nil {
		t.Error("--output local: the RUN volume's mount point is in the image")
	}
	list, err := exec.Command("tar", "-tf", outTar).Output()
	if err != nil || !strings.Contains(string(list), "x.txt") || !strings.Contains(string(list), "bin/busybox") {
		t.Errorf("--output tar: %v\n%s", err, list)
	}
}

// TestBuildGitContext: a git repository as the context, at a ref and in
// a subdirectory ("#ref:subdir"); --build-arg-file; --force-rm=false
// keeps the failed step's container.
func TestBuildGitContext(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	must(t, os.MkdirAll(filepath.Join(repo, "app"), 0o755))
	must(t, os.WriteFile(filepath.Join(repo, "app/Dockerfile"), []byte("FROM localhost/busybox\nARG V\nCOPY v.txt /\nRUN echo $V >> /v.txt\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(repo, "app/v.txt"), []byte("release\n"), 0o644))
	git("add", ".")
	git("commit", "-q", "-m", "one")
	git("tag", "v1")
	must(t, os.WriteFile(filepath.Join(repo, "app/v.txt"), []byte("later\n"), 0o644))
	git("commit", "-q", "-am", "two")
	argFile := filepath.Join(t.TempDir(), "args")
	must(t, os.WriteFile(argFile, []byte("# comment\nV=from-file\n"), 0o644))
	e.mustKiln("build", "-q", "-t", "fromgit", "--build-arg-file", argFile, repo+"#v1:app")
	c := e.mustKiln("from", "fromgit")
	if got := e.mustKiln("run", c, "--", "cat", "/v.txt"); got != "release\nfrom-file" {
		t.Errorf("built from git at v1 = %q", got)
	}
	e.mustKiln("rm", c)
	// At a commit, whole or short, and at the default branch's head.
	out, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD~1").Output()
	must(t, err)
	sha := strings.TrimSpace(string(out))
	for _, ref := range []string{sha, sha[:10], ""} {
		want := "release"
		if ref == "" {
			want = "later"
		}
		e.mustKiln("build", "-q", "-t", "fromgit", "--build-arg", "V=x", repo+"#"+ref+":app")
		c := e.mustKiln("from", "fromgit")
		if got := e.mustKiln("run", c, "--", "cat", "/v.txt"); got != want+"\nx" {
			t.Errorf("built from git at %q = %q", ref, got)
		}
		e.mustKiln("rm", c)
	}

	dir := dockerfileDir(t, "FROM localhost/busybox\nRUN echo partial > /p && exit 3\n")
	if _, _, code := e.kiln("build", "--force-rm=false", dir); code != 3 {
		t.Errorf("failing RUN: exit %d, want 3", code)
	}
	if out := e.mustKiln("containers", "-q"); out == "" {
		t.Error("--force-rm=false: the failed step's container is gone")
	}
}

// TestBuildKilled: kill -9 of kiln in the middle of a RUN leaves a
// container and a runtime process; the next build removes both and works,
// and no mount of the store is left once the store is closed.
func TestBuildKilled(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := dockerfileDir(t, "FROM localhost/busybox\nRUN sleep 300\n")
	cmd := e.command("build", dir)
	must(t, cmd.Start())
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if out, _ := exec.Command("pgrep", "-f", "sleep 300").Output(); len(out) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the RUN never started")
		}
	}
	must(t, cmd.Process.Kill())
	_ = cmd.Wait()
	// The next command, whatever it is, removes what the killed build left.
	if out := e.mustKiln("containers", "-q"); out != "" {
		t.Errorf("containers of the killed build left: %s", out)
	}
	must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM localhost/busybox\nRUN echo ok\n"), 0o644))
	e.mustKiln("build", "-q", dir)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("pgrep", "-f", "sleep 300").Output()
		if len(out) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the killed build's RUN process is still running: %s", out)
			break
		}
	}
	e.mustKiln("unmount", "--all")
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), e.root) {
		t.Errorf("mounts left under %s", e.root)
	}
}

// TestBuildOmitHistory: --omit-history leaves the final image with no
// history entries in either format (also a FROM-only build, which is
// otherwise its base image named), while its layers stay.
func TestBuildOmitHistory(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	for _, c := range []struct{ name, df, format string }{
		{"runs", "FROM localhost/busybox\nRUN echo hello > /h\nRUN echo world > /w\n", "docker"},
		{"runs-oci", "FROM localhost/busybox\nRUN echo hello > /h\n", "oci"},
		{"from-only", "FROM localhost/busybox\n", "oci"},
	} {
		dir := dockerfileDir(t, c.df)
		e.mustKiln("build", "-q", "--omit-history", "--format", c.format, "-t", c.name, dir)
		got := e.mustKiln("inspect", "--format", "{{.Docker.History}} {{.OCIv1.History}} {{.History}} {{len .OCIv1.RootFS.DiffIDs}}", c.name)
		want := fmt.Sprintf("[] [] [] %d", 1+strings.Count(c.df, "RUN"))
		if got != want {
			t.Errorf("%s: history and layers = %q, want %q", c.name, got, want)
		}
	}
}

// TestBuildDebugLog: the debug lines Buildah's tests and users' scripts
// grep for: the retry settings, a cache hit found without running the
// step, and --cache-ttl=0 turning the cache off.
func TestBuildDebugLog(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "somefile"), []byte("something\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM localhost/busybox\nCOPY somefile .\n"), 0o644))
	e.mustKiln("build", "-q", "--layers", "-t", "dbg", dir)
	_, errOut, code := e.kiln("--log-level", "debug", "build", "--retry", "4", "--retry-delay", "5s", "--layers", "-t", "dbg", dir)
	if code != 0 {
		t.Fatalf("second build: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Setting MaxPullPushRetries to 4 and PullPushRetryDelay to 5s", "Found a cache hit in the first iteration"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("debug log lacks %q:\n%s", want, errOut)
		}
	}
	out, errOut, code := e.kiln("--log-level", "debug", "build", "--cache-ttl=0", "--layers", "-t", "dbg", dir)
	if code != 0 || !strings.Contains(errOut, "Setting --no-cache=true") || strings.Contains(out+errOut, "Using cache") {
		t.Errorf("--cache-ttl=0: exit %d, the cache is not off:\n%s\n%s", code, out, errOut)
	}
}

// TestBuildFromStageOnly: a final stage that is only FROM an earlier
// stage is written in the asked format with the base image's
// annotations (Buildah's bud-multistage-reused); one that is only FROM
// an image is that image, named.
func TestBuildFromStageOnly(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	baseDigest := e.mustKiln("inspect", "--format", "{{.FromImageDigest}}", "localhost/busybox")
	dir := dockerfileDir(t, "FROM localhost/busybox AS base\nRUN pwd\nFROM base\n")
	e.mustKiln("build", "-q", "--format", "oci", "-t", "reused", dir)
	got := e.mustKiln("inspect", "--format", `{{index .ImageAnnotations "org.opencontainers.image.base.digest"}} {{index .ImageAnnotations "org.opencontainers.image.base.name"}}`, "reused")
	if want := baseDigest + " localhost/busybox:latest"; got != want {
		t.Errorf("FROM an earlier stage: annotations %q, want %q", got, want)
	}
	if m := e.mustKiln("inspect", "--format", "{{.Manifest}}", "reused"); !strings.Contains(m, "application/vnd.oci.image.manifest.v1+json") {
		t.Errorf("FROM an earlier stage: not an OCI manifest: %s", m)
	}
	must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM localhost/busybox\n"), 0o644))
	e.mustKiln("build", "-q", "--format", "oci", "-t", "tagged", dir)
	if a, b := e.mustKiln("inspect", "--format", "{{.FromImageID}}", "tagged"), e.mustKiln("inspect", "--format", "{{.FromImageID}}", "localhost/busybox"); a != b {
		t.Errorf("FROM an image only: image %s, want the base %s", a, b)
	}
	e.mustKiln("build", "-q", "--format", "oci", "--annotation", "test=annotation", "-t", "annotated", dir)
	if got := e.mustKiln("inspect", "--format", `{{index .ImageAnnotations "test"}}`, "annotated"); got != "annotation" {
		t.Errorf("FROM an image only with --annotation: annotation %q", got)
	}
}

// TestBuildFailedContainer: with --layers given, a failed build keeps
// the failed step's container, as Buildah and Docker's classic builder
// do, unless --force-rm; without it (kiln's default caching) nothing is
// left, as with BuildKit.
func TestBuildFailedContainer(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := dockerfileDir(t, "FROM localhost/busybox\nRUN touch /x\nRUN exit 3\n")
	for _, c := range []struct {
		args []string
		kept int
	}{
		{nil, 0},
		{[]string{"--layers", "--force-rm"}, 0},
		{[]string{"--layers"}, 1},
	} {
		if _, _, code := e.kiln(append(append([]string{"build"}, c.args...), dir)...); code != 3 {
			t.Fatalf("%v: exit %d, want 3", c.args, code)
		}
		out := e.mustKiln("containers", "-q")
		if n := len(strings.Fields(out)); n != c.kept {
			t.Errorf("%v: %d containers left, want %d: %q", c.args, n, c.kept, out)
		}
		for _, id := range strings.Fields(out) {
			e.mustKiln("rm", id)
		}
	}
}

// TestOCIDropWarnings: an OCI build or commit that drops Docker-only
// fields warns in Buildah's words, which scripts grep.
func TestOCIDropWarnings(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := dockerfileDir(t, "FROM localhost/busybox\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nHEALTHCHECK CMD true\nRUN true\n")
	_, errOut, code := e.kiln("build", "--format", "oci", "-t", "warned", dir)
	if code != 0 {
		t.Fatalf("build: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"SHELL is not supported for OCI image format, [/bin/sh -e -c] will be ignored. Must use `docker` format", "HEALTHCHECK is not supported for OCI image format and will be ignored."} {
		if !strings.Contains(errOut, want) {
			t.Errorf("build: no warning %q:\n%s", want, errOut)
		}
	}
	c := e.mustKiln("from", "-q", "localhost/busybox")
	e.mustKiln("config", "--onbuild", "RUN echo hi", c)
	_, errOut, code = e.kiln("commit", "-q", "--format", "oci", c, "warned2")
	if want := "ONBUILD is not supported for OCI image format, [RUN echo hi] will be ignored."; code != 0 || !strings.Contains(errOut, want) {
		t.Errorf("commit: exit %d, want warning %q:\n%s", code, want, errOut)
	}
}

// TestBuildArgWarningAndRunKeys: an ARG with no value anywhere warns in
// Buildah's words; a RUN with other capabilities is not taken from the
// cache.
func TestBuildArgWarningAndRunKeys(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := dockerfileDir(t, "FROM localhost/busybox\nARG foo\nARG TARGETARCH\nRUN echo \"foo=$foo\"; grep CapBnd /proc/self/status\n")
	_, errOut, code := e.kiln("build", "-t", "args", dir)
	// In the log line's quoting, as Buildah's logrus line has it.
	if want := `missing \"foo\" build argument. Try adding \"--build-arg foo=<VALUE>\" to the command line`; code != 0 || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, want warning %q:\n%s", code, want, errOut)
	}
	if strings.Contains(errOut, "TARGETARCH") {
		t.Errorf("a warning for an automatic arg:\n%s", errOut)
	}
	out, errOut, code := e.kiln("build", "--build-arg", "foo=bar", "-t", "args", dir)
	if code != 0 || strings.Contains(errOut, "missing") || !strings.Contains(out, "foo=bar") {
		t.Errorf("with --build-arg: exit %d:\n%s\n%s", code, out, errOut)
	}
	first, _, _ := e.kiln("build", "--build-arg", "foo=bar", "--cap-drop", "CAP_CHOWN", "-t", "args", dir)
	second, _, _ := e.kiln("build", "--build-arg", "foo=bar", "--cap-drop", "CAP_FOWNER,CAP_CHOWN", "-t", "args", dir)
	if !strings.Contains(first, "CapBnd") || !strings.Contains(second, "CapBnd") || first == second {
		t.Errorf("--cap-drop CAP_CHOWN then CAP_FOWNER: the RUN did not run again:\n%s\n---\n%s", first, second)
	}
}

// TestBuildLogRusage: --log-rusage logs each step's usage in Buildah's
// shape, also for a step that runs nothing; --rusage-logfile takes it.
func TestBuildLogRusage(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := dockerfileDir(t, "FROM localhost/busybox\nSHELL [\"/bin/sh\", \"-c\"]\nRUN true\n")
	out, errOut, code := e.kiln("build", "--log-rusage", "--no-cache", "--format", "docker", dir)
	re := regexp.MustCompile(`\(system\).*\(user\).*\(elapsed\).*input.*output`)
	if n := len(re.FindAllString(out+errOut, -1)); code != 0 || n != 2 {
		t.Errorf("exit %d, %d usage lines, want 2:\n%s\n%s", code, n, out, errOut)
	}
	logFile := filepath.Join(t.TempDir(), "usage.log")
	e.mustKiln("build", "--log-rusage", "--rusage-logfile", logFile, "--no-cache", "--format", "docker", dir)
	data, err := os.ReadFile(logFile)
	if n := len(re.FindAll(data, -1)); err != nil || n != 2 {
		t.Errorf("--rusage-logfile: %v, %d usage lines:\n%s", err, n, data)
	}
}

// TestBuildSeveralFiles: -f twice joins the files; one that is wrong on
// its own (a bad escape directive, which joined would be a comment) is
// refused naming it, as Buildah refuses it (bud 'build-multiple-parse').
func TestBuildSeveralFiles(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "D1"), []byte("FROM localhost/busybox\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "D2"), []byte("RUN echo joined > /j\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "Dbad"), []byte(`# escape=|\nFROM alpine`+"\n"), 0o644))
	e.mustKiln("build", "-q", "-t", "joined", "-f", filepath.Join(dir, "D1"), "-f", filepath.Join(dir, "D2"), dir)
	_, errOut, code := e.kiln("build", "-f", filepath.Join(dir, "D1"), "-f", filepath.Join(dir, "Dbad"), dir)
	if code != 125 || !regexp.MustCompile(`parsing additional Dockerfile .*Dbad: invalid ESCAPE`).MatchString(errOut) {
		t.Errorf("bad second file: exit %d: %s", code, errOut)
	}
}

// TestBuildDevices: --device gives RUN a host device, and a directory
// of devices gives every device in it under the container path, as
// Buildah does (bud 'with additional directory of devices').
func TestBuildDevices(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	devs := t.TempDir()
	must(t, unix.Mknod(filepath.Join(devs, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	dir := dockerfileDir(t, "FROM localhost/busybox\nRUN ls /dev/fuse && echo hi > /dev/fuse/null && ls -l /dev/one\n")
	out, errOut, code := e.kiln("build", "--isolation", "oci", "--no-cache", "--device", devs+":/dev/fuse", "--device", "/dev/null:/dev/one", dir)
	if code != 0 || !strings.Contains(out, "null") || !strings.Contains(out, "1,   3") {
		t.Errorf("exit %d:\n%s\n%s", code, out, errOut)
	}
	_, errOut, code = e.kiln("build", "--device", dir+":/dev/x", dir)
	if code != 125 || !strings.Contains(errOut, "no devices in it") {
		t.Errorf("a directory without devices: exit %d: %s", code, errOut)
	}
}

// dockerfileDir is a new context directory holding Dockerfile df.
func dockerfileDir(t *testing.T, df string) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644))
	return dir
}

// TestBuildTransportTag: -t naming a transport writes the built image
// there, as Buildah commits to it, also under a policy that rejects
// every image (the policy is for what is pulled: buildah-bud-policy).
func TestBuildTransportTag(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	deny := filepath.Join(t.TempDir(), "deny.json")
	must(t, os.WriteFile(deny, []byte(`{"default":[{"type":"reject"}]}`), 0o644))
	dir := dockerfileDir(t, "FROM localhost/busybox\nRUN echo built > /built\n")
	out := t.TempDir()
	e.mustKiln("build", "-q", "--signature-policy", deny, "-t", "dir:"+filepath.Join(out, "d"), "-t", "oci:"+filepath.Join(out, "layout")+":tagged", "-t", "named", dir)
	for _, f := range []string{"d/manifest.json", "layout/index.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("-t transport: %v", err)
		}
	}
	if got := e.mustKiln("images", "--format", "{{.Name}}"); !strings.Contains(got, "localhost/named") || strings.Contains(got, "dir") {
		t.Errorf("images after the build:\n%s", got)
	}
}

// TestBuildContextImageHeader: a stage FROM a name --build-context gives
// an image shows that image in its STEP line, as Buildah shows it.
func TestBuildContextImageHeader(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := dockerfileDir(t, "FROM base\nRUN true\n")
	out, errOut, code := e.kiln("build", "--build-context", "base=docker-image://localhost/busybox", dir)
	if code != 0 || !strings.Contains(out, "STEP 1/2: FROM localhost/busybox") {
		t.Errorf("exit %d:\n%s\n%s", code, out, errOut)
	}
}
