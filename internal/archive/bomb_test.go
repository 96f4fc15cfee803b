package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// Bombs: layers that claim far more than they carry, or carry far more
// than they should. Apply must refuse them or finish within a bounded
// time and heap, writing nothing outside the root.

const (
	// heapBound is the most heap an Apply may add, beyond the decoders'
	// windows (4 MiB for gzip).
	heapBound = 64 << 20
	// timeBound is generous: the unbounded versions of these take
	// minutes to hours, or never finish.
	timeBound = 30 * time.Second
)

// peakHeap runs f and returns the largest growth of live heap objects
// seen while it ran, sampled every millisecond.
func peakHeap(f func()) uint64 {
	const metric = "/memory/classes/heap/objects:bytes"
	read := func() uint64 {
		s := []metrics.Sample{{Name: metric}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	runtime.GC()
	base := read()
	var peak atomic.Uint64
	observe := func() {
		if v := read(); v > peak.Load() {
			peak.Store(v)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
				observe()
			}
		}
	})
	f()
	observe()
	close(done)
	wg.Wait()
	if peak.Load() < base {
		return 0
	}
	return peak.Load() - base
}

// repeat is a reader of b n times over.
func repeat(b []byte, n int64) io.Reader {
	return &repeater{b: b, n: n}
}

type repeater struct {
	b   []byte
	n   int64
	off int
}

func (r *repeater) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	if r.off == len(r.b) {
		r.off = 0
		r.n--
	}
	return n, nil
}

// gzMember compresses b as one gzip member; concatenated members are one
// stream.
func gzMember(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

var zeroMiBGz = sync.OnceValue(func() []byte { return gzMember(make([]byte, 1<<20)) })

// gzZeros is a gzip stream of mib MiB of zeros, about 1 KiB per MiB.
func gzZeros(mib int64) io.Reader { return repeat(zeroMiBGz(), mib) }

// zstdZeros is a zstd frame of n*128 KiB of zeros made of RLE blocks,
// 4 bytes each: about 32,000 to 1.
func zstdZeros(n int64) io.Reader {
	head := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3} // 128 KiB window
	rle := func(last bool) []byte {
		h := uint32(1)<<1 | uint32(128<<10)<<3
		if last {
			h |= 1
		}
		return []byte{byte(h), byte(h >> 8), byte(h >> 16), 0}
	}
	return io.MultiReader(bytes.NewReader(head), repeat(rle(false), n-1), bytes.NewReader(rle(true)))
}

// zstdRaw is a zstd frame with one raw block holding b (at most 128 KiB)
// whose header claims the window descriptor wd.
func zstdRaw(b []byte, wd byte) []byte {
	out := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, wd}
	h := uint32(1) | uint32(len(b))<<3
	return append(append(out, byte(h), byte(h>>8), byte(h>>16)), b...)
}

// headerBlocks is the header blocks of h alone (no content, no end).
func headerBlocks(t testing.TB, h tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&h); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes() // not closed: the writer would want the content
}

// endBlocks pads content of size bytes to a block and ends the archive.
func endBlocks(size int64) []byte {
	return make([]byte, (512-size%512)%512+1024)
}

// paxSparse is a PAX tar entry carrying GNU sparse records (Go's writer
// drops them) and content, ended. The records are written as a PAX
// header of their own, in order.
func paxSparse(t testing.TB, name string, size int64, records [][2]string, content []byte) []byte {
	t.Helper()
	var pax []byte
	for _, r := range records {
		rec := " " + r[0] + "=" + r[1] + "\n"
		n := len(rec) + 1 // a record's length counts its own digits
		for len(strconv.Itoa(n))+len(rec) != n {
			n++
		}
		pax = append(pax, strconv.Itoa(n)+rec...)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "PaxHeaders/" + name, Typeflag: tar.TypeReg, Size: int64(len(pax)), Format: tar.FormatUSTAR}))
	tw.Write(pax)
	must(t, tw.Flush())
	setTypeflag(buf.Bytes()[:512], tar.TypeXHeader)
	must(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, Format: tar.FormatUSTAR}))
	tw.Write(content)
	must(t, tw.Close())
	return buf.Bytes()
}

// sparse01 is a GNU PAX 0.1 sparse file of one 512-byte segment that
// claims size bytes.
func sparse01(t testing.TB, size int64) []byte {
	t.Helper()
	return paxSparse(t, "big", 512, [][2]string{{"GNU.sparse.numblocks", "1"}, {"GNU.sparse.map", "0,512"}, {"GNU.sparse.size", strconv.FormatInt(size, 10)}}, bytes.Repeat([]byte{'x'}, 512))
}

// setTypeflag changes the type of a header block and fixes its checksum.
func setTypeflag(blk []byte, typ byte) {
	blk[156] = typ
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// oldGNUSparse is a GNU 'S' header for name whose sparse map holds one
// 512-byte segment of a file claiming realSize bytes, with its data.
func oldGNUSparse(t testing.TB, name string, realSize int64) []byte {
	t.Helper()
	blk := headerBlocks(t, tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 512, Format: tar.FormatGNU})
	if len(blk) != 512 {
		t.Fatalf("GNU header is %d bytes", len(blk))
	}
	copy(blk[386:398], fmt.Sprintf("%011o\x00", 0))   // offset of segment 0
	copy(blk[398:410], fmt.Sprintf("%011o\x00", 512)) // its length
	real := blk[483:495]                              // base-256 real size
	clear(real)
	real[0] = 0x80
	for i, v := 11, realSize; i > 0; i, v = i-1, v>>8 {
		real[i] = byte(v)
	}
	setTypeflag(blk, tar.TypeGNUSparse)
	return append(append(blk, bytes.Repeat([]byte{'x'}, 512)...), endBlocks(512)...)
}

// headerFlood streams a tar of n entries made by entry(i).
func headerFlood(n int, entry func(i int) tar.Header) func(testing.TB, int64) io.Reader {
	return func(t testing.TB, _ int64) io.Reader {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			for i := range n {
				h := entry(i)
				if err := tw.WriteHeader(&h); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			pw.CloseWithError(tw.Close())
		}()
		t.Cleanup(func() { pr.Close() })
		return pr
	}
}

func freeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	must(t, unix.Statfs(dir, &st))
	return int64(st.Bavail) * st.Bsize
}

// duBytes is the disk space the files under dir take.
func duBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	must(t, filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil {
			n += fi.Sys().(*syscall.Stat_t).Blocks * 512
		}
		return err
	}))
	return n
}

// mountTmpfs mounts a tmpfs of size bytes on a new temp dir: the space
// claims of some bombs are real there, and bounded.
func mountTmpfs(t testing.TB, size int64) string {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	must(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)))
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

const (
	tib = int64(1) << 40
	gib = int64(1) << 30
	mib = int64(1) << 20
)

func TestApplyBombs(t *testing.T) {
	smallTar := tarOf(t, file("a", "x"))
	tests := []struct {
		name    string
		tmpfs   int64 // the jail is on a tmpfs of this size (needs root)
		layer   func(t testing.TB, free int64) io.Reader
		wantErr error
		maxDisk int64 // most the root may take on disk afterwards
		heap    uint64
	}{
		{
			name: "gzip: one file claiming twice the free space",
			layer: func(t testing.TB, free int64) io.Reader {
				h := headerBlocks(t, tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2 * free})
				return io.MultiReader(bytes.NewReader(gzMember(h)), gzZeros(1<<20))
			},
			wantErr: syscall.ENOSPC,
		},
		{
			name: "gzip: 64 GiB of zeros after the end of the archive",
			layer: func(t testing.TB, _ int64) io.Reader {
				return io.MultiReader(bytes.NewReader(gzMember(smallTar)), gzZeros(64<<10))
			},
			wantErr: ErrLayerRefused,
		},
		{
			name: "gzip: a file of 1 TiB of zeros in 1 GiB",
			layer: func(t testing.TB, _ int64) io.Reader {
				h := headerBlocks(t, tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: tib})
				return io.MultiReader(bytes.NewReader(gzMember(h)), gzZeros(tib/mib))
			},
			wantErr: syscall.ENOSPC,
		},
		{
			name: "zstd: 1 TiB of zeros after the end of the archive",
			layer: func(t testing.TB, _ int64) io.Reader {
				return io.MultiReader(bytes.NewReader(zstdRaw(smallTar, 7<<3)), zstdZeros(tib/(128<<10)))
			},
			wantErr: ErrLayerRefused,
		},
		{
			name: "zstd: a frame claiming a 512 MiB window",
			layer: func(t testing.TB, _ int64) io.Reader {
				return bytes.NewReader(zstdRaw(smallTar, 19<<3))
			},
			wantErr: errAny,
		},
		{
			name: "zstd: a frame claiming a 3.75 TB window",
			layer: func(t testing.TB, _ int64) io.Reader {
				return bytes.NewReader(zstdRaw(smallTar, 0xff))
			},
			wantErr: errAny,
		},
		{
			name: "xz: a stream claiming a 4 GiB dictionary",
			layer: func(t testing.TB, _ int64) io.Reader {
				return bytes.NewReader(withDict(t, xzWith(t, xz.WriterConfig{}, smallTar), 40))
			},
			wantErr: ErrLayerRefused,
		},
		{
			name: "PAX sparse 1.0 file claiming 1 TiB",
			layer: func(t testing.TB, _ int64) io.Reader {
				sparseMap := make([]byte, 512)
				copy(sparseMap, "1\n0\n512\n")
				return bytes.NewReader(paxSparse(t, "GNUSparseFile.0/big", 1024, [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", "big"}, {"GNU.sparse.realsize", strconv.FormatInt(tib, 10)}},
					append(sparseMap, bytes.Repeat([]byte{'x'}, 512)...)))
			},
			wantErr: syscall.ENOSPC,
		},
		{
			name: "PAX sparse 0.1 file claiming 1 TiB",
			layer: func(t testing.TB, _ int64) io.Reader {
				return bytes.NewReader(sparse01(t, tib))
			},
			wantErr: syscall.ENOSPC,
		},
		{
			name: "old GNU sparse file claiming 1 TiB",
			layer: func(t testing.TB, _ int64) io.Reader {
				return bytes.NewReader(oldGNUSparse(t, "big", tib))
			},
			wantErr: syscall.ENOSPC,
		},
		{
			name: "100,000 identical directory headers",
			layer: headerFlood(100_000, func(int) tar.Header {
				return tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1e9, 0)}
			}),
		},
		{
			name: "one directory with 100,000 different mtimes",
			layer: headerFlood(100_000, func(i int) tar.Header {
				return tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(int64(i), 0)}
			}),
			wantErr: ErrLayerRefused,
		},
		{
			name: "20,000 names of one directory through symlinks to .",
			layer: func(t testing.TB, _ int64) io.Reader {
				pr, pw := io.Pipe()
				go func() {
					tw := tar.NewWriter(pw)
					for _, l := range []string{"s", "t"} {
						tw.WriteHeader(&tar.Header{Name: l, Typeflag: tar.TypeSymlink, Linkname: "."})
					}
					for i := range 20_000 {
						name := ""
						for b := range 15 {
							name += string("st"[i>>b&1]) + "/"
						}
						if err := tw.WriteHeader(&tar.Header{Name: name + "d/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
							pw.CloseWithError(err)
							return
						}
					}
					pw.CloseWithError(tw.Close())
				}()
				t.Cleanup(func() { pr.Close() })
				return pr
			},
		},
		{
			name: "100,000 whiteouts of nothing",
			layer: headerFlood(100_000, func(i int) tar.Header {
				return tar.Header{Name: fmt.Sprintf(".wh.f%d", i), Typeflag: tar.TypeReg}
			}),
		},
		{
			name:  "gzip bomb that fits: 32 MiB of zeros on a 64 MiB tmpfs",
			tmpfs: 64 * mib,
			layer: func(t testing.TB, _ int64) io.Reader {
				h := headerBlocks(t, tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 32 * mib})
				return io.MultiReader(bytes.NewReader(gzMember(h)), gzZeros(32), bytes.NewReader(gzMember(endBlocks(0))))
			},
			maxDisk: 33 * mib,
		},
		{
			name:  "gzip: many 8 MiB files that together claim more than a 64 MiB tmpfs",
			tmpfs: 64 * mib,
			layer: func(t testing.TB, _ int64) io.Reader {
				var parts []io.Reader
				for i := range 20 {
					h := headerBlocks(t, tar.Header{Name: fmt.Sprintf("f%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 8 * mib})
					parts = append(parts, bytes.NewReader(gzMember(h)), gzZeros(8))
				}
				return io.MultiReader(parts...)
			},
			wantErr: syscall.ENOSPC,
			maxDisk: 64 * mib,
		},
		{
			name:  "PAX sparse file claiming 48 MiB on a 64 MiB tmpfs",
			tmpfs: 64 * mib,
			layer: func(t testing.TB, _ int64) io.Reader {
				return bytes.NewReader(sparse01(t, 48*mib))
			},
			maxDisk: 49 * mib,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.tmpfs > 0 {
				dir = mountTmpfs(t, tc.tmpfs)
			}
			j := newJail(t, dir)
			before := j.snapshot(t)
			layer := tc.layer(t, freeBytes(t, j.root))
			ctx, cancel := context.WithTimeout(context.Background(), 2*timeBound)
			defer cancel()
			var err error
			start := time.Now()
			peak := peakHeap(func() { _, err = Apply(ctx, j.root, layer, ApplyOptions{}) })
			elapsed := time.Since(start)
			t.Logf("Apply: %v; %v, peak heap +%d KiB, root %d KiB on disk", err, elapsed.Round(time.Millisecond), peak>>10, duBytes(t, j.root)>>10)
			checkErr(t, err, tc.wantErr)
			if peak > heapBound {
				t.Errorf("the heap grew by %d MiB, more than %d MiB", peak>>20, heapBound>>20)
			}
			if elapsed > timeBound {
				t.Errorf("Apply took %v, more than %v", elapsed, timeBound)
			}
			if du := duBytes(t, j.root); tc.maxDisk > 0 && du > tc.maxDisk || tc.maxDisk == 0 && du > 1*mib {
				t.Errorf("the root takes %d KiB on disk", du>>10)
			}
			j.checkJail(t, before)
		})
	}
}

// TestApplyZstdWindowLimit checks that a zstd window at the limit is
// still accepted (zstd --long and level 22 use it) and one just above is
// refused before anything is allocated for it.
func TestApplyZstdWindowLimit(t *testing.T) {
	layer := tarOf(t, file("a", "x"))
	for _, tc := range []struct {
		name    string
		wd      byte // window descriptor: exponent<<3 | mantissa
		wantErr error
	}{
		{"128 MiB", 17 << 3, nil},
		{"144 MiB", 17<<3 | 1, zstd.ErrWindowSizeExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			peak := peakHeap(func() {
				_, err = Apply(context.Background(), t.TempDir(), bytes.NewReader(zstdRaw(layer, tc.wd)), ApplyOptions{})
			})
			t.Logf("Apply: %v; peak heap +%d KiB", err, peak>>10)
			checkErr(t, err, tc.wantErr)
			if peak > maxZstdWindow+heapBound {
				t.Errorf("the heap grew by %d MiB", peak>>20)
			}
		})
	}
}
