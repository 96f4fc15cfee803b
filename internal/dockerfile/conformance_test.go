package dockerfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// expectation is a case's expect.json: what the built image must hold.
type expectation struct {
	Args   map[string]string `json:"args"`
	Target string            `json:"target"`
	Format string            `json:"format"`
	// Platform is the build's platform (--platform), OS/ARCH[/VARIANT].
	Platform string            `json:"platform"`
	Secrets  map[string]string `json:"secrets"`
	// Parent: parent/Dockerfile is built first and named localhost/parent.
	Parent bool `json:"parent"`
	// Error: the build must fail with an error containing this text.
	Error    string            `json:"error"`
	ExitCode int               `json:"exitCode"`
	Files    map[string]string `json:"files"`
	Absent   []string          `json:"absent"`
	Modes    map[string]string `json:"modes"`
	Owners   map[string]string `json:"owners"`
	Links    map[string]string `json:"links"`
	// Config is compared key by key with the image's config.config.
	Config map[string]json.RawMessage `json:"config"`
	// Image is compared key by key with the top level of the config
	// document as it was written: null and [] differ here.
	Image map[string]json.RawMessage `json:"image"`
	// Hardlinks: the paths of each group are one inode.
	Hardlinks [][]string `json:"hardlinks"`
	// Distinct: the paths of each group are different inodes.
	Distinct [][]string `json:"distinct"`
	// Output: lines the build must print.
	Output []string `json:"output"`
}

// TestConformance builds every case under testdata/cases and checks the
// image's files and config against the case's expect.json.
func TestConformance(t *testing.T) {
	cases, err := filepath.Glob("testdata/cases/*")
	must(t, err)
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	st := testStore(t)
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			runCase(t, st, dir)
		})
	}
}

func runCase(t *testing.T, st *store.Store, dir string) {
	var exp expectation
	raw, err := os.ReadFile(filepath.Join(dir, "expect.json"))
	must(t, err)
	must(t, json.Unmarshal(raw, &exp))
	ctxDir := filepath.Join(dir, "context")
	if _, err := os.Stat(ctxDir); err != nil {
		ctxDir = t.TempDir()
	}
	if exp.Parent {
		df, err := os.ReadFile(filepath.Join(dir, "parent", "Dockerfile"))
		must(t, err)
		if _, out, err := buildIn(t, st, ctxDir, string(df), func(o *Options) { o.Tags = []string{"localhost/parent:latest"} }); err != nil {
			t.Fatalf("parent build: %v\n%s", err, out)
		}
	}
	df, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	must(t, err)
	secretDir := t.TempDir()
	ignore, err := ReadIgnore("", filepath.Join(dir, "Dockerfile"), ctxDir)
	must(t, err)
	img, out, err := buildIn(t, st, ctxDir, string(df), func(o *Options) {
		o.Args, o.Target, o.Ignore = exp.Args, exp.Target, ignore
		if exp.Platform != "" {
			p, err := parsePlatform(exp.Platform)
			must(t, err)
			o.Platform = p
		}
		if exp.Format == "oci" {
			o.Commit.Format = image.FormatOCI
		}
		o.Run.Secrets = map[string]Secret{}
		for id, v := range exp.Secrets {
			p := filepath.Join(secretDir, id)
			must(t, os.WriteFile(p, []byte(v), 0o600))
			o.Run.Secrets[id] = Secret{Src: p}
		}
	})
	if exp.Error != "" {
		checkError(t, exp, err, out)
		return
	}
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, line := range exp.Output {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}
	checkTree(t, rootOf(t, st, img), exp)
	checkConfig(t, st, img, exp)
}

func checkError(t *testing.T, exp expectation, err error, out string) {
	t.Helper()
	if err == nil {
		t.Fatalf("build succeeded, want an error containing %q\n%s", exp.Error, out)
	}
	if !strings.Contains(err.Error(), exp.Error) {
		t.Errorf("error %q does not contain %q", err, exp.Error)
	}
	for _, line := range exp.Output {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}
	if exp.ExitCode != 0 {
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != exp.ExitCode {
			t.Errorf("error %v: want exit code %d", err, exp.ExitCode)
		}
	}
}

func checkTree(t *testing.T, root string, exp expectation) {
	t.Helper()
	for p, want := range exp.Files {
		got, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("%s content (-want +got):\n%s", p, diff)
		}
	}
	for _, p := range exp.Absent {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s exists, want it absent", p)
		}
	}
	for p, want := range exp.Modes {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if got := fmt.Sprintf("%04o", fi.Mode().Perm()|fi.Mode()&os.ModeSticky); got != want {
			t.Errorf("%s mode = %s, want %s", p, got, want)
		}
	}
	for p, want := range exp.Owners {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%d:%d", st.Uid, st.Gid); got != want {
			t.Errorf("%s owner = %s, want %s", p, got, want)
		}
	}
	for p, want := range exp.Links {
		got, err := os.Readlink(filepath.Join(root, p))
		if err != nil || got != want {
			t.Errorf("%s link = %q (%v), want %q", p, got, err, want)
		}
	}
	for _, group := range exp.Hardlinks {
		for _, p := range group[1:] {
			if !sameInode(t, root, group[0], p) {
				t.Errorf("%s and %s are not hard links of one file", group[0], p)
			}
		}
	}
	for _, group := range exp.Distinct {
		for i, p := range group {
			for _, q := range group[i+1:] {
				if sameInode(t, root, p, q) {
					t.Errorf("%s and %s are hard links of one file, want two files", p, q)
				}
			}
		}
	}
}

// sameInode reports whether paths a and b of root are one inode.
func sameInode(t *testing.T, root, a, b string) bool {
	t.Helper()
	var sa, sb syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(root, a), &sa); err != nil {
		t.Errorf("%s: %v", a, err)
		return false
	}
	if err := syscall.Lstat(filepath.Join(root, b), &sb); err != nil {
		t.Errorf("%s: %v", b, err)
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

func checkConfig(t *testing.T, st *store.Store, img store.Image, exp expectation) {
	t.Helper()
	rawDoc, err := st.ImageConfig(img)
	must(t, err)
	var doc map[string]json.RawMessage
	must(t, json.Unmarshal(rawDoc, &doc))
	for _, k := range sortedKeys(exp.Image) {
		var w, g any
		must(t, json.Unmarshal(exp.Image[k], &w))
		if v, ok := doc[k]; ok {
			must(t, json.Unmarshal(v, &g))
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("image config %s (-want +got):\n%s", k, diff)
		}
	}
	cfg := configOf(t, st, img)
	raw, err := json.Marshal(cfg.Config)
	must(t, err)
	var got map[string]json.RawMessage
	must(t, json.Unmarshal(raw, &got))
	for k, want := range exp.Config {
		var w, g any
		must(t, json.Unmarshal(want, &w))
		if v, ok := got[k]; ok {
			must(t, json.Unmarshal(v, &g))
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("config %s (-want +got):\n%s", k, diff)
		}
	}
}
