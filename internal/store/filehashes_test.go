package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFileHashes: a context's digests are remembered whole, merged with
// what was remembered before, kept apart from other contexts'; paths
// outside the context are not kept; a damaged record reads as nothing.
func TestFileHashes(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	const dir = "/src/app"
	first := map[string]FileHash{}
	for i := range 3000 {
		first[fmt.Sprintf("%s/d%02d/f%05d.txt", dir, i/100, i)] = FileHash{Size: int64(i), MTime: -int64(i) * 1e9, CTime: 1700000000123456789, Ino: uint64(1<<40 + i), Sum: fmt.Sprintf("%064x", i)}
	}
	first[dir+"/only-name"] = FileHash{}
	must(t, s.PutFileHashes(ctx, dir, first))
	got, err := s.FileHashes(ctx, dir)
	must(t, err)
	if diff := cmp.Diff(first, got); diff != "" {
		t.Fatalf("remembered (-put +got):\n%s", diff)
	}

	changed := FileHash{Size: 9, MTime: 1, CTime: 2, Ino: 3, Sum: "new"}
	must(t, s.PutFileHashes(ctx, dir, map[string]FileHash{
		dir + "/d00/f00007.txt": changed, dir + "/new": changed, "/elsewhere/x": changed, "/src/app2/y": changed}))
	got, err = s.FileHashes(ctx, dir)
	must(t, err)
	want := map[string]FileHash{}
	for p, h := range first {
		want[p] = h
	}
	want[dir+"/d00/f00007.txt"], want[dir+"/new"] = changed, changed
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after a second build (-want +got):\n%s", diff)
	}
	if other, err := s.FileHashes(ctx, "/src/app2"); err != nil || len(other) != 0 {
		t.Errorf("another context: %v, %v; want nothing", other, err)
	}

	if _, err := s.db.sql.Exec(`UPDATE context_file_hashes SET data=? WHERE dir=?`, []byte{fileHashesFormat, 0, 200, 'x'}, dir); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FileHashes(ctx, dir); err != nil || len(got) != 0 {
		t.Errorf("damaged record: %d digests, %v; want none", len(got), err)
	}
}

// FuzzDecodeFileHashes: any record decodes or is refused, and what
// decodes encodes back to the same digests.
func FuzzDecodeFileHashes(f *testing.F) {
	f.Add(encodeFileHashes("/c", map[string]FileHash{"/c/a": {Size: 1, Sum: "s"}, "/c/ab": {Ino: 5}}))
	f.Add([]byte{fileHashesFormat, 3, 1, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeFileHashes("/c", data)
		if err != nil {
			return
		}
		again, err := decodeFileHashes("/c", encodeFileHashes("/c", got))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Errorf("re-encoded (-first +again):\n%s", diff)
		}
	})
}
