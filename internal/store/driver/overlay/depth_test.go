package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/store/driver"
	"github.com/kiln-build/kiln/internal/store/driver/drivertest"
)

func oneFile(t *testing.T, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("x"))
	tw.Close()
	return buf.Bytes()
}

// TestDeepChains: a container on 499 layers (500 lower directories with
// its own upper) mounts under a root path far longer than usual, where
// the classic option string held about 60; past overlay's 500 the error
// says how many layers and what to do.
func TestDeepChains(t *testing.T) {
	drivertest.RequiresRoot(t)
	ctx := context.Background()
	home := filepath.Join(t.TempDir(), strings.Repeat("a-long-store-root-", 12))
	d, err := New(driver.Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	parent := ""
	for i := range 501 {
		id := fmt.Sprintf("l%03d", i)
		if err := d.Create(ctx, id, parent); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ApplyDiff(ctx, id, bytes.NewReader(oneFile(t, fmt.Sprintf("f%03d", i)))); err != nil {
			t.Fatal(err)
		}
		parent = id
	}
	for _, tc := range []struct {
		on      string
		layers  int
		tooDeep bool
	}{{"l498", 499, false}, {"l499", 500, false}, {"l500", 501, true}} {
		t.Run(fmt.Sprint(tc.layers), func(t *testing.T) {
			ctr := "c" + tc.on
			if err := d.Create(ctx, ctr, tc.on); err != nil {
				t.Fatal(err)
			}
			mp, err := d.Mount(ctx, ctr, false)
			if tc.tooDeep {
				if !errors.Is(err, driver.ErrTooDeep) || !strings.Contains(err.Error(), "501 layers") || !strings.Contains(err.Error(), "--squash") {
					t.Fatalf("mounting on %d layers = %v, want ErrTooDeep naming 501 layers and --squash", tc.layers, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("mounting on %d layers: %v", tc.layers, err)
			}
			defer d.Unmount(ctx, ctr)
			for _, f := range []string{"f000", fmt.Sprintf("f%03d", tc.layers-1)} {
				if _, err := os.Stat(filepath.Join(mp, f)); err != nil {
					t.Errorf("%s on %d layers: %v", f, tc.layers, err)
				}
			}
			if err := os.WriteFile(filepath.Join(mp, "new"), []byte("w"), 0o644); err != nil {
				t.Errorf("writing on %d layers: %v", tc.layers, err)
			}
		})
	}
}
