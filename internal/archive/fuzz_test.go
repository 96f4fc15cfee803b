package archive

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Host paths the seeds aim absolute names and links at; FuzzApply
// checks that none of them ever appears.
var fuzzCanaries = []string{"/kiln-fuzz-canary", "/tmp/kiln-fuzz-canary"}

// FuzzApply applies arbitrary bytes as a layer, in both modes, into a
// root inside a jail on a small tmpfs (so that space claims are real and
// bounded). Invariants: no panic, nothing in the jail outside the root
// changes, nothing appears at the canary paths on the host, and the
// root stays a directory.
func FuzzApply(f *testing.F) {
	base := mountTmpfs(f, 16*mib)
	for _, c := range hostileCases {
		j := jail{parent: fuzzCanaries[1], canary: fuzzCanaries[0]}
		layer := tarOf(f, j.expand(c.entries)...)
		f.Add(layer, false)
		f.Add(layer, true)
	}
	small := tarOf(f, dir("d/"), file("d/f", "x"), symlink("d/s", "f"), hardlink("d/h", "d/f"), file("d/.wh.g", ""), file("d/.wh..wh..opq", ""))
	f.Add(small, false)
	f.Add(gzMember(small), false)
	f.Add(zstdRaw(small, 7<<3), false)
	f.Add(sparse01(f, 1<<20), false)
	f.Add(oldGNUSparse(f, "s", 1<<20), false)
	var zbuf bytes.Buffer
	zw, _ := zstd.NewWriter(&zbuf)
	zw.Write(small)
	zw.Close()
	f.Add(zbuf.Bytes(), true)
	f.Add(xzWith(f, xz.WriterConfig{CheckSum: xz.CRC32}, small), false)

	f.Fuzz(func(t *testing.T, layer []byte, overlay bool) {
		dir, err := os.MkdirTemp(base, "jail-")
		must(t, err)
		defer os.RemoveAll(dir)
		j := newJail(t, dir)
		before := j.snapshot(t)
		_, _ = Apply(context.Background(), j.root, bytes.NewReader(layer), ApplyOptions{Overlay: overlay})
		j.checkJail(t, before)
		for _, c := range fuzzCanaries {
			if _, err := os.Lstat(c); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s exists on the host after the apply (%v)", c, err)
			}
		}
		if fi, err := os.Lstat(j.root); err != nil || !fi.IsDir() {
			t.Errorf("the root is no longer a directory: %v", err)
		}
	})
}
