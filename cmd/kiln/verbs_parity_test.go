package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCopyContextDirIgnore: copy --contextdir reads sources relative to
// the directory and leaves out what its .dockerignore (or --ignorefile)
// excludes, as Buildah's copy does; --ignorefile alone is an error.
func TestCopyContextDirIgnore(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	for _, f := range []string{"keep.txt", "drop.log", "sub/also.txt", "sub/also.log"} {
		must(t, os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("*.log\nsub/*.log\n"), 0o644))
	alt := filepath.Join(t.TempDir(), "alt.ignore")
	must(t, os.WriteFile(alt, []byte("keep.txt\n"), 0o644))

	c := e.mustKiln("from", "localhost/busybox")
	e.mustKiln("copy", "--contextdir", dir, c, ".", "/ctx/")
	e.mustKiln("copy", "--contextdir", dir, "--ignorefile", alt, c, ".", "/alt/")
	mp := e.mustKiln("mount", c)
	for path, want := range map[string]bool{
		"ctx/keep.txt": true, "ctx/sub/also.txt": true, "ctx/drop.log": false, "ctx/sub/also.log": false,
		"alt/keep.txt": false, "alt/drop.log": true, "alt/sub/also.log": true,
	} {
		_, err := os.Lstat(filepath.Join(mp, path))
		if got := err == nil; got != want {
			t.Errorf("/%s copied: %v, want %v", path, got, want)
		}
	}
	if errOut := e.fails("copy", "--ignorefile", alt, c, dir, "/x/"); !strings.Contains(errOut, "--ignorefile option requires that you specify a context dir using --contextdir") {
		t.Errorf("--ignorefile without --contextdir: %q", errOut)
	}
}

// TestCopyFromPulls: copy --from an image that is not stored pulls it
// first, with the registry flags given to copy.
func TestCopyFromPulls(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	host := plainRegistry(t)
	e.labelled("localhost/src")
	e.mustKiln("push", "-q", "--tls-verify=false", "localhost/src", "docker://"+host+"/src:1")
	e.mustKiln("rmi", "localhost/src")
	c := e.mustKiln("from", "localhost/busybox")
	e.mustKiln("copy", "--tls-verify=false", "--from", host+"/src:1", c, "/bin/busybox", "/fetched")
	if _, err := os.Stat(filepath.Join(e.mustKiln("mount", c), "fetched")); err != nil {
		t.Error(err)
	}
	if got := e.mustKiln("images", "--format", "{{.Name}}:{{.Tag}}", host+"/src:1"); got != host+"/src:1" {
		t.Errorf("the --from image was not kept: %q", got)
	}
}

// TestConfigUnset: config --unsetlabel, --unsetenv and --unsetannotation
// remove what the base image set; --os-version and --os-feature set the
// config's os.version and os.features.
func TestConfigUnset(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	e.labelled("localhost/labelled", "--label", "a=1", "--label", "b=2", "--env", "KEEP=1", "--env", "DROP=1", "--annotation", "x=1")
	c := e.mustKiln("from", "localhost/labelled")
	e.mustKiln("config", "--unsetlabel", "a", "--unsetenv", "DROP", "--unsetannotation", "x", "--unsetlabel", "missing",
		"--os-version", "10.0.1", "--os-feature", "f1", "--os-feature", "f2", c)
	e.mustKiln("config", "--os-feature", "f1-", c)
	e.mustKiln("commit", "-q", c, "localhost/unset")
	got := e.mustKiln("inspect", "--format", "{{.OCIv1.Config.Labels}} {{.OCIv1.Config.Env}} {{.ImageAnnotations}} {{.OCIv1.OSVersion}} {{.OCIv1.OSFeatures}}", "localhost/unset")
	if strings.Contains(got, "a:1") || !strings.Contains(got, "b:2") || strings.Contains(got, "DROP") || !strings.Contains(got, "KEEP=1") ||
		strings.Contains(got, "x:1") || !strings.HasSuffix(got, "10.0.1 [f2]") {
		t.Errorf("config after unsetting: %q", got)
	}
}

// TestPullPolicyFlag: pull --policy as Buildah's: never fails on a
// missing image ("image not known") and keeps a stored one, missing
// keeps a stored one, always pulls again, and an unknown policy is
// refused with Buildah's words.
func TestPullPolicyFlag(t *testing.T) {
	e := newEnv(t, "vfs")
	e.busybox()
	host := plainRegistry(t)
	name := host + "/pol:1"
	pushed := e.labelled("localhost/pol", "--label", "v=1")
	e.mustKiln("push", "-q", "--tls-verify=false", "localhost/pol", "docker://"+name)

	if errOut := e.fails("pull", "--policy", "bogus", name); !strings.Contains(errOut, `unsupported pull policy "bogus"`) {
		t.Errorf("--policy bogus: %q", errOut)
	}
	if errOut := e.fails("pull", "-q", "--policy", "never", "--tls-verify=false", name); !strings.Contains(errOut, "image not known") {
		t.Errorf("--policy never of a missing image: %q", errOut)
	}
	if got := e.mustKiln("pull", "-q", "--policy", "missing", "--tls-verify=false", name); got != pushed {
		t.Errorf("--policy missing pulled %q, want %s", got, pushed)
	}
	// A different image under the name locally: never and missing keep
	// it, always replaces it by the registry's.
	local := e.labelled(name, "--label", "v=local")
	for _, p := range []string{"never", "missing"} {
		if got := e.mustKiln("pull", "-q", "--policy", p, "--tls-verify=false", name); got != local {
			t.Errorf("--policy %s: %q, want the stored %s", p, got, local)
		}
	}
	if got := e.mustKiln("pull", "-q", "--policy", "always", "--tls-verify=false", name); got != pushed {
		t.Errorf("--policy always: %q, want the registry's %s", got, pushed)
	}
}

// TestCommitTimestampFileTimes: commit --timestamp 0 (and
// --omit-timestamp) gives the committed files that time in a container of
// the image here too, as in the pushed layer (Buildah's commit.bats:
// "commit timestamp", ls -l /test shows 1970).
func TestCommitTimestampFileTimes(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	for _, flag := range []string{"--timestamp=0", "--omit-timestamp"} {
		c := e.mustKiln("from", "localhost/busybox")
		must(t, os.WriteFile(filepath.Join(e.mustKiln("mount", c), "test"), nil, 0o644))
		e.mustKiln("commit", "-q", flag, "--rm", c, "localhost/epoch")
		c2 := e.mustKiln("from", "localhost/epoch")
		fi, err := os.Stat(filepath.Join(e.mustKiln("mount", c2), "test"))
		must(t, err)
		if fi.ModTime().Unix() != 0 {
			t.Errorf("commit %s: /test modified %v in a container of the image, want 1970", flag, fi.ModTime())
		}
		e.mustKiln("rm", c2)
	}
}

// TestInspectDockerView: .Docker.ContainerConfig shows the config for an
// image in either format, as Buildah's inspect does (bud 'from base image
// should have base image ENV also' reads it after an OCI commit).
func TestInspectDockerView(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	e.mustKiln("config", "--env", "foo=bar", "--env", "random=hello,goodbye", c)
	for _, f := range []string{"oci", "docker"} {
		e.mustKiln("commit", "-q", "--format", f, c, "view-"+f)
		got := e.mustKiln("inspect", "--format", "{{index .Docker.ContainerConfig.Env 1}} {{index .Docker.ContainerConfig.Env 2}}", "view-"+f)
		if got != "foo=bar random=hello,goodbye" {
			t.Errorf("%s: .Docker.ContainerConfig.Env = %q", f, got)
		}
	}
	if got := e.mustKiln("inspect", "--format", "{{index .Docker.ContainerConfig.Env 1}}", c); got != "foo=bar" {
		t.Errorf("container: .Docker.ContainerConfig.Env[1] = %q", got)
	}
}

// TestImagesListsManifestLists: images lists a manifest list by its name
// beside the images, as Buildah does (bud '--manifest' tests), but not
// when filtered or asked for one image.
func TestImagesListsManifestLists(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	e.mustKiln("manifest", "create", "testlist")
	if out := e.mustKiln("images"); !strings.Contains(out, "localhost/testlist") || !strings.Contains(out, "localhost/busybox") {
		t.Errorf("images:\n%s", out)
	}
	if out := e.mustKiln("images", "--filter", "dangling=false"); strings.Contains(out, "testlist") {
		t.Errorf("images --filter lists the manifest list:\n%s", out)
	}
	if out := e.mustKiln("images", "--format", "{{.Name}}:{{.Tag}}"); !strings.Contains(out, "localhost/testlist:latest") {
		t.Errorf("images --format:\n%s", out)
	}
	// rmi takes what images lists: a list by name, or by its ID.
	e.mustKiln("manifest", "create", "otherlist")
	e.mustKiln("rmi", "testlist")
	id := e.mustKiln("images", "--format", "{{.ID}} {{.Name}}")
	for _, line := range strings.Split(id, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "localhost/otherlist" {
			e.mustKiln("rmi", f[0])
		}
	}
	if out := e.mustKiln("images"); strings.Contains(out, "list") || !strings.Contains(out, "localhost/busybox") {
		t.Errorf("images after rmi of both lists:\n%s", out)
	}
}

// TestBuildManifestInspect: build -q --manifest prints the image's ID, as
// Buildah 1.28 does (bud '--manifest flag new manifest'), and inspect
// takes a manifest list's name or ID as Buildah takes it (a list is an
// image in its store): the list's image for this platform, or, when it
// has none, the list as manifest inspect prints it.
func TestBuildManifestInspect(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "Containerfile"), []byte("FROM localhost/busybox\nCOPY f /f\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("hi\n"), 0o644))
	e.mustKiln("manifest", "create", "existing")
	for _, list := range []string{"testlist", "existing"} {
		id := e.mustKiln("build", "-q", "--manifest", list, "-t", "arch-test", dir)
		if want := e.mustKiln("inspect", "--format", "{{.FromImageID}}", "arch-test"); id != want {
			t.Fatalf("build -q --manifest %s printed %q, want the image's ID %q", list, id, want)
		}
		digest := e.mustKiln("inspect", "--format", "{{.FromImageDigest}}", id)
		if got := e.mustKiln("manifest", "inspect", list); !strings.Contains(got, digest) {
			t.Errorf("manifest inspect %s lacks %s:\n%s", list, digest, got)
		}
		var listID string
		for _, line := range strings.Split(e.mustKiln("images", "--no-trunc", "--format", "{{.ID}} {{.Name}}"), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[1] == "localhost/"+list {
				listID = strings.TrimPrefix(f[0], "sha256:")
			}
		}
		if len(listID) != 64 {
			t.Fatalf("images lists no ID for %s", list)
		}
		for _, a := range [][]string{{list}, {listID}, {listID[:12]}, {"sha256:" + listID}, {"--type", "image", list}} {
			args := append([]string{"inspect", "--format", "{{.FromImageID}} {{.FromImageDigest}}"}, a...)
			if got := e.mustKiln(args...); got != id+" "+digest {
				t.Errorf("inspect %v: %q, want the list's image %q", a, got, id+" "+digest)
			}
		}
		if got := e.mustKiln("inspect", "--type", "manifest", list); !strings.Contains(got, `"manifests"`) || !strings.Contains(got, digest) {
			t.Errorf("inspect --type manifest %s:\n%s", list, got)
		}
	}
	// A list with no image for this platform: the list itself, --format
	// or not; an error with --type image.
	e.mustKiln("manifest", "create", "empty")
	if got := e.mustKiln("inspect", "--format", "{{.FromImageID}}", "empty"); !strings.Contains(got, `"schemaVersion": 2`) {
		t.Errorf("inspect of an empty list:\n%s", got)
	}
	if errOut := e.fails("inspect", "--type", "image", "empty"); !strings.Contains(errOut, "no image found in manifest list for architecture") {
		t.Errorf("inspect --type image of an empty list: %s", errOut)
	}
	if errOut := e.fails("inspect", "nosuchlist"); !strings.Contains(errOut, "container not known") {
		t.Errorf("inspect of nothing: %s", errOut)
	}
}

// TestCommitAgain: committing a container that changed nothing since its
// last commit makes that image again (Buildah commits a container's whole
// change each time: push 'push' compares two such commits); a change
// since makes a new layer as usual.
func TestCommitAgain(t *testing.T) {
	e := newEnv(t, "")
	e.foreignBusybox()
	c := e.mustKiln("from", "-q", "localhost/busybox")
	mp := e.mustKiln("mount", c)
	must(t, os.WriteFile(filepath.Join(mp, "added"), []byte("x\n"), 0o644))
	first := e.mustKiln("commit", "-q", "--timestamp", "1700000000", c, "again1")
	second := e.mustKiln("commit", "-q", "--timestamp", "1700000000", c, "again2")
	if first != second {
		t.Errorf("a second commit of an unchanged container: image %s, want %s", second, first)
	}
	layers := func(img string) string {
		return e.mustKiln("inspect", "--format", "{{len .OCIv1.RootFS.DiffIDs}} {{len .OCIv1.History}}", img)
	}
	base := layers("localhost/busybox")
	must(t, os.WriteFile(filepath.Join(mp, "more"), []byte("y\n"), 0o644))
	third := e.mustKiln("commit", "-q", "--timestamp", "1700000000", c, "again3")
	if third == first || layers("again3") == layers("again1") {
		t.Errorf("a commit after a change: image %s (%s), the first %s (%s)", third, layers("again3"), first, layers("again1"))
	}
	if base == layers("again1") {
		t.Errorf("the first commit added no layer: %s", base)
	}
}
