package blobio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

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

func TestWriteFileAtomicRefusesMismatch(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "blob")
	err := WriteFileAtomic(p, bytes.NewReader([]byte("bad")), digest.FromString("good"), 3)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("WriteFileAtomic: %v, want ErrDigestMismatch", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind %v", entries)
	}
}

func TestReadDocumentLimit(t *testing.T) {
	if _, err := ReadDocument(bytes.NewReader(make([]byte, MaxDocumentSize+1))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadDocument of 4 MiB + 1: %v, want ErrTooLarge", err)
	}
	if _, err := ReadDocument(bytes.NewReader(make([]byte, MaxDocumentSize))); err != nil {
		t.Errorf("ReadDocument of 4 MiB: %v", err)
	}
}
