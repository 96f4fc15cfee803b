package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

// run runs kiln with extra environment variables and standard input,
// returning stdout, stderr and the exit code.
func (e *env) run(stdin string, extraEnv []string, a ...string) (string, string, int) {
	e.t.Helper()
	cmd := e.command(a...)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running kiln %v: %v", a, err)
	}
	return strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()), code
}

// mustRun is run that fails the test on a non-zero exit.
func (e *env) mustRun(stdin string, extraEnv []string, a ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(stdin, extraEnv, a...)
	if code != 0 {
		e.t.Fatalf("kiln %v: exit %d: %s", a, code, errOut)
	}
	return out
}

// fails runs kiln, expects exit 125 and returns stderr.
func (e *env) fails(a ...string) string {
	e.t.Helper()
	_, errOut, code := e.kiln(a...)
	if code != 125 {
		e.t.Fatalf("kiln %v: exit %d, want 125 (stderr %q)", a, code, errOut)
	}
	return errOut
}

// labelled commits a busybox variant with a label (and other config
// flags) as name, and returns its image ID.
func (e *env) labelled(name string, config ...string) string {
	e.t.Helper()
	c := e.mustKiln("from", "localhost/busybox")
	e.mustKiln(append(append([]string{"config"}, config...), c)...)
	return e.mustKiln("commit", "-q", "--rm", c, name)
}

// plainRegistry starts a docker-registry without TLS or auth.
func plainRegistry(t *testing.T) string {
	t.Helper()
	return transporttest.StartRegistry(t, false).Host
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
}

func runPeer(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}

func tempPath(t *testing.T, name string) string { return filepath.Join(t.TempDir(), name) }
