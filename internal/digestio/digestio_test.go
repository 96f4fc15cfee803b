package digestio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/opencontainers/go-digest"
)

func TestVerifier(t *testing.T) {
	content := []byte("hello kiln")
	d := digest.FromBytes(content)
	tests := []struct {
		name string
		data []byte
		size int64
		want error
	}{
		{"match", content, int64(len(content)), nil},
		{"unknown size", content, -1, nil},
		{"truncated", content[:5], int64(len(content)), ErrSizeMismatch},
		{"longer", append(content, '!'), int64(len(content)), ErrSizeMismatch},
		{"corrupt", []byte("hello KILN"), int64(len(content)), ErrDigestMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(bytes.NewReader(tc.data), d, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(io.Discard, v)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Errorf("reading: %v, want %v", err, tc.want)
			}
			if got := v.Verified(); got != (tc.want == nil) {
				t.Errorf("Verified() = %v, want %v", got, tc.want == nil)
			}
		})
	}
}

func TestNewDigester(t *testing.T) {
	content := []byte("hello kiln")
	v := NewDigester(bytes.NewReader(content))
	if _, err := io.Copy(io.Discard, v); err != nil {
		t.Fatal(err)
	}
	if got, want := v.Digest(), digest.FromBytes(content); got != want {
		t.Errorf("Digest() = %s, want %s", got, want)
	}
	if got, want := v.Size(), int64(len(content)); got != want {
		t.Errorf("Size() = %d, want %d", got, want)
	}
	if !v.Verified() {
		t.Error("Verified() = false after EOF")
	}
}

func TestWriteBlob(t *testing.T) {
	good := []byte("good")
	tests := []struct {
		name string
		data []byte
		size int64
		want error
	}{
		{"match", good, 4, nil},
		{"corrupt", []byte("bad!"), 4, ErrDigestMismatch},
		{"short", good[:2], 4, ErrSizeMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "blob")
			os.WriteFile(p, []byte("old"), 0o600)
			err := WriteBlob(p, bytes.NewReader(tc.data), digest.FromBytes(good), tc.size)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("WriteBlob: %v, want %v", err, tc.want)
			}
			wantContent := "old"
			if tc.want == nil {
				wantContent = string(good)
			}
			if b, _ := os.ReadFile(p); string(b) != wantContent {
				t.Errorf("content %q, want %q", b, wantContent)
			}
			if got := names(t, dir); !cmp.Equal(got, []string{"blob"}) {
				t.Errorf("directory holds %v, want only blob", got)
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, content := range []string{"first", "second"} {
		if err := WriteFileAtomic(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Fatalf("read %q, %v; want %q", b, err, content)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o640 {
		t.Errorf("mode %v, want 0640", got)
	}
	if got := names(t, dir); !cmp.Equal(got, []string{"f.json"}) {
		t.Errorf("directory holds %v, want only f.json", got)
	}
}

func TestWriteAtomicFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("old"), 0o600)
	boom := errors.New("boom")
	err := WriteAtomic(p, 0o600, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteAtomic: %v, want boom", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("content %q, want old", b)
	}
	if got := names(t, dir); !cmp.Equal(got, []string{"f"}) {
		t.Errorf("directory holds %v, want only f", got)
	}
}

func TestFileAbortAfterCommit(t *testing.T) {
	dir := t.TempDir()
	f, err := CreateTemp(dir, "x-")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	if err := f.Commit(filepath.Join(dir, "final")); err != nil {
		t.Fatal(err)
	}
	f.Abort()
	if got := names(t, dir); !cmp.Equal(got, []string{"final"}) {
		t.Errorf("directory holds %v, want only final", got)
	}
}

func TestReadDocumentLimit(t *testing.T) {
	if _, err := ReadDocument(bytes.NewReader(make([]byte, image.MaxDocumentSize+1))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadDocument of 4 MiB + 1: %v, want ErrTooLarge", err)
	}
	if _, err := ReadDocument(bytes.NewReader(make([]byte, image.MaxDocumentSize))); err != nil {
		t.Errorf("ReadDocument of 4 MiB: %v", err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
