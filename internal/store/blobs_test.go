package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// TestPutBlob: a blob is stored under the digest it hashes to; one that
// does not match the digest claimed leaves nothing, in blobs/ or tmp/.
func TestPutBlob(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, t.TempDir())
	content := "hello kiln"
	good := digest.FromString(content)
	tests := []struct {
		name    string
		want    digest.Digest
		content string
		wantErr error
	}{
		{"digest given", good, content, nil},
		{"no digest given", "", content, nil},
		{"content does not match", good, "hello KILN", ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(s.blobPath(good))
			d, n, err := s.PutBlob(ctx, tt.want, strings.NewReader(tt.content))
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("PutBlob = %v, want %v", err, tt.wantErr)
			}
			if leftovers, _ := os.ReadDir(filepath.Join(s.root, "tmp")); len(leftovers) != 0 {
				t.Errorf("tmp/ holds %d files", len(leftovers))
			}
			if tt.wantErr != nil {
				if s.HasBlob(good) {
					t.Errorf("a blob was stored despite the error")
				}
				return
			}
			if d != good || n != int64(len(content)) {
				t.Errorf("PutBlob = %s, %d; want %s, %d", d, n, good, len(content))
			}
			if b, err := s.ReadBlob(good, 100); err != nil || string(b) != content {
				t.Errorf("ReadBlob = %q, %v", b, err)
			}
		})
	}
}
