package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testbase"
)

// reproContext writes the same build context to a new directory with
// every file's and directory's modification time set to mtime.
func reproContext(t *testing.T, base string, mtime time.Time) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"Dockerfile": "FROM " + base + "\nARG SOURCE_DATE_EPOCH\nCOPY . /app/\nRUN echo \"built at $SOURCE_DATE_EPOCH\" > /built && mkdir -p /var/made && echo x > /var/made/file\nADD extra.txt /opt/\nENV FOO=bar\n",
		"src/main.c": "int main(void) { return 0; }\n",
		"src/util.h": "#define X 1\n",
		"extra.txt":  "extra\n",
		"README":     "readme\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(content), 0o644))
	}
	must(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	}))
	return dir
}

// TestReproducibleBuild: two clean builds of the same context on two
// stores, with different modification times on the context's files and
// run at different times, make the same image when the epoch is fixed
// (by flag or by the environment), and different ones when it is not;
// --verify-reproducible agrees, and names the first difference when a
// build is not reproducible.
func TestReproducibleBuild(t *testing.T) {
	reg := plainRegistry(t)
	base := testbase.Push(t, reg, testbase.Spec{Kind: testbase.Busybox}).Name
	const epoch = "1700000000"
	now := time.Now()
	ctxA := reproContext(t, base, now.Add(-48*time.Hour))
	ctxB := reproContext(t, base, now.Add(-time.Hour))
	a, b := newEnv(t, ""), newEnv(t, "")
	idA := a.mustKiln("build", "-q", "--tls-verify=false", "--source-date-epoch", epoch, "-t", "repro", ctxA)
	time.Sleep(1100 * time.Millisecond) // a different second, for anything that reads the clock
	idB := b.mustRun("", []string{"SOURCE_DATE_EPOCH=" + epoch}, "build", "-q", "--tls-verify=false", "-t", "repro", ctxB)
	if idA != idB {
		t.Errorf("same context and epoch on two stores: image %s and %s", idA, idB)
	}
	// The manifests pushed (layers compressed on the way) agree too.
	pushA := filepath.Join(t.TempDir(), "a")
	pushB := filepath.Join(t.TempDir(), "b")
	a.mustKiln("push", "--digestfile", pushA, "repro", "oci:"+filepath.Join(t.TempDir(), "la")+":x")
	b.mustKiln("push", "--digestfile", pushB, "repro", "oci:"+filepath.Join(t.TempDir(), "lb")+":x")
	if da, db := readFile(t, pushA), readFile(t, pushB); da != db {
		t.Errorf("pushed manifests differ: %s and %s", da, db)
	}
	created := a.mustKiln("inspect", "--format", "{{.OCIv1.Created}}", "repro")
	if !strings.HasPrefix(created, "2023-11-14 22:13:20") {
		t.Errorf("created = %q, want the epoch", created)
	}
	// The epoch as a build arg is the epoch too.
	idArg := b.mustKiln("build", "-q", "--no-cache", "--tls-verify=false", "--build-arg", "SOURCE_DATE_EPOCH="+epoch, ctxA)
	if idArg != idA {
		t.Errorf("SOURCE_DATE_EPOCH as a build arg: image %s, want %s", idArg, idA)
	}
	// Without an epoch the two builds differ.
	noA := a.mustKiln("build", "-q", "--no-cache", "--tls-verify=false", ctxA)
	noB := b.mustKiln("build", "-q", "--no-cache", "--tls-verify=false", ctxB)
	if noA == noB {
		t.Errorf("builds without an epoch at different times made the same image %s", noA)
	}
	// --verify-reproducible: passes with an epoch, names a file without.
	if _, errOut, code := a.kiln("build", "-q", "--tls-verify=false", "--source-date-epoch", epoch, "--verify-reproducible", ctxA); code != 0 || !strings.Contains(errOut, "reproducible") {
		t.Errorf("--verify-reproducible with an epoch: exit %d, %s", code, errOut)
	}
	_, errOut, code := a.kiln("build", "-q", "--tls-verify=false", "--verify-reproducible", ctxA)
	if code != 125 || !strings.Contains(errOut, "not reproducible") || !strings.Contains(errOut, "first difference") {
		t.Errorf("--verify-reproducible without an epoch: exit %d, %s", code, errOut)
	}
	// Refused combinations.
	a.fails("build", "--source-date-epoch", epoch, "--timestamp", epoch, ctxA)
	a.fails("build", "--rewrite-timestamp", ctxA)
	a.fails("build", "--source-date-epoch", epoch, "--rewrite-timestamp=false", ctxA)
}
