package images

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
	_ "github.com/kiln-build/kiln/internal/store/driver/overlay"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/transport"

	"github.com/kiln-build/kiln/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbase.Cleanup()
	os.Exit(code)
}

// newStore opens a fresh overlay store in a temporary directory.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.NeedRoot(t, "a store mounts and owns files")
	}
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Driver: "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs, _ := container.All(ctx, st)
		for _, c := range cs {
			_ = c.Remove(ctx)
		}
		st.Close()
	})
	return st
}

// testSystem reaches plain-HTTP registries on loopback and reads none of
// the host's registries.conf, certs.d or credentials.
func testSystem(t *testing.T) *transport.SystemContext {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	no := false
	return &transport.SystemContext{
		TLSVerify: &no, RegistriesConf: conf, RegistriesConfDir: filepath.Join(dir, "registries.conf.d"),
		ShortNameAliasConf: filepath.Join(dir, "aliases.conf"), AuthFile: filepath.Join(dir, "auth.json"),
		CertsDirs: []string{filepath.Join(dir, "certs.d")}, Env: func(string) string { return "" },
	}
}

// commitImage commits an image of one file, with labels, named names, as
// made at created.
func commitImage(t *testing.T, st *store.Store, file string, labels map[string]string, created time.Time, names ...string) store.Image {
	t.Helper()
	ctx := context.Background()
	c, err := container.New(ctx, st, container.NewOptions{Image: "scratch"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Remove(ctx)
	root, err := c.Mount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, file), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	c.State.Config.Config.Labels = labels
	img, err := c.Commit(ctx, container.CommitOptions{Names: names, Format: image.FormatOCI, Timestamp: &created})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// recorder is a Progress that keeps what it was shown.
type recorder struct {
	mu     sync.Mutex
	events int
	done   []error
}

func (r *recorder) Event(transport.ProgressEvent) { r.mu.Lock(); r.events++; r.mu.Unlock() }
func (r *recorder) Done(err error)                { r.mu.Lock(); r.done = append(r.done, err); r.mu.Unlock() }

// copies is how many copies ended, and whether all succeeded.
func (r *recorder) copies() (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := true
	for _, err := range r.done {
		ok = ok && err == nil
	}
	return len(r.done), ok
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}
