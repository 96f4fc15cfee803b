package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	_ "github.com/kiln-build/kiln/internal/store/driver/vfs"

	"github.com/kiln-build/kiln/internal/testenv"
)

func TestParseMinFreeSpace(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		in    string
		total int64
		want  int64
		bad   bool
	}{
		{"", 10 * gib, 10 * gib * 5 / 100, false},
		{"", 100 * gib, 2 * gib, false},
		{"0", 100 * gib, 0, false},
		{"10%", 1000, 100, false},
		{"64M", 0, 64 << 20, false},
		{"2GiB", 0, 2 * gib, false},
		{"1.5g", 0, 3 * gib / 2, false},
		{"512", 0, 512, false},
		{"-1", 0, 0, true},
		{"lots", 0, 0, true},
		{"150%", 0, 0, true},
	} {
		got, err := ParseMinFreeSpace(tc.in, tc.total)
		if (err != nil) != tc.bad {
			t.Errorf("ParseMinFreeSpace(%q) error = %v, want error %v", tc.in, err, tc.bad)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseMinFreeSpace(%q, %d) = %d, want %d", tc.in, tc.total, got, tc.want)
		}
	}
}

// smallFS mounts a tmpfs of size bytes for one test.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.NeedRoot(t, "a store mounts and owns files")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		testenv.Unavailable(t, "mounting tmpfs: %v", err)
	}
	t.Cleanup(func() {
		exec.Command("umount", "-R", "-l", dir).Run()
	})
	return dir
}

func openOn(t *testing.T, dir, minFree string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Driver: "vfs",
		DriverOpts: map[string]string{"min_free_space": minFree}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSpaceGuardRefusesBeforeWriting: below min_free_space a blob write
// is refused with a SpaceError that says what is free and what prune
// would reclaim, and nothing lands in the store.
func TestSpaceGuardRefusesBeforeWriting(t *testing.T) {
	ctx := context.Background()
	dir := smallFS(t, "32m")
	s := openOn(t, dir, "100%")
	_, _, err := s.PutBlob(ctx, "", strings.NewReader("hello"))
	var se *SpaceError
	if !errors.As(err, &se) || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("PutBlob below the minimum = %v, want a SpaceError", err)
	}
	for _, want := range []string{"free of", "min_free_space", "kiln prune"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	assertNoBlobsOrTemps(t, s)
	if _, err := s.ApplyLayer(ctx, "", sha256Digest(oneFileTar(t, "a", "A")), bytes.NewReader(oneFileTar(t, "a", "A"))); !errors.Is(err, ErrNoSpace) {
		t.Errorf("ApplyLayer below the minimum = %v, want ErrNoSpace", err)
	}
	if _, err := s.CreateContainer(ctx, "c", "", "", nil); !errors.Is(err, ErrNoSpace) {
		t.Errorf("CreateContainer below the minimum = %v, want ErrNoSpace", err)
	}
}

// TestENOSPCIsCleanAndQuick: with the guard off, a write that fills the
// filesystem fails within seconds with a SpaceError, and the space it
// took comes back.
func TestENOSPCIsCleanAndQuick(t *testing.T) {
	ctx := context.Background()
	dir := smallFS(t, "16m")
	s := openOn(t, dir, "0")
	free0, _, _, _ := s.FreeSpace()
	start := time.Now()
	_, _, err := s.PutBlob(ctx, "", zeroReader{})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("PutBlob of endless data on a 16M tmpfs = %v, want ErrNoSpace", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("ENOSPC took %v to report", d)
	}
	if !strings.Contains(err.Error(), "is full") {
		t.Errorf("error %q does not say the filesystem is full", err)
	}
	assertNoBlobsOrTemps(t, s)
	if free, _, _, _ := s.FreeSpace(); free < free0-1<<20 {
		t.Errorf("free space after the failed write %d, before %d: the space did not come back", free, free0)
	}
	layer := oneFileTar(t, "big", strings.Repeat("x", 32<<20))
	if _, err := s.ApplyLayer(ctx, "", sha256Digest(layer), bytes.NewReader(layer)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("ApplyLayer of 32M on a 16M tmpfs = %v, want ErrNoSpace", err)
	}
	var n int
	s.db.sql.QueryRow(`SELECT count(*) FROM layers`).Scan(&n)
	if n != 0 {
		t.Errorf("%d layer rows left after ENOSPC", n)
	}
	if free, _, _, _ := s.FreeSpace(); free < free0-1<<20 {
		t.Errorf("free space after the failed layer %d, before %d", free, free0)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func assertNoBlobsOrTemps(t *testing.T, s *Store) {
	t.Helper()
	for _, d := range []string{filepath.Join(s.root, "blobs", "sha256"), filepath.Join(s.root, "tmp")} {
		entries, _ := os.ReadDir(d)
		if len(entries) > 0 {
			t.Errorf("%s holds %d entries after a refused or failed write", d, len(entries))
		}
	}
}

func sha256Digest(b []byte) digest.Digest {
	return digest.NewDigestFromBytes(digest.SHA256, sha256Sum(b))
}
