package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/internal/digestio"
	digest "github.com/opencontainers/go-digest"
)

func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded())
}

// HasBlob reports whether the blob is stored.
func (s *Store) HasBlob(d digest.Digest) bool {
	if d.Validate() != nil {
		return false
	}
	_, err := os.Stat(s.blobPath(d))
	return err == nil
}

// PutBlob stores the content of r and returns its digest and size. When
// want is not empty the content must hash to it (ErrDigestMismatch), or
// nothing is stored. The write is digestio's: temp file, hash while
// writing, fsync, rename, fsync of the directory.
func (s *Store) PutBlob(ctx context.Context, want digest.Digest, r io.Reader) (digest.Digest, int64, error) {
	v := digestio.NewDigester(ctxReader{ctx, r})
	if want != "" {
		if err := want.Validate(); err != nil {
			return "", 0, fmt.Errorf("blob digest %q: %w", want, err)
		}
		if want.Algorithm() != digest.SHA256 {
			return "", 0, fmt.Errorf("blob digest %s: only sha256 is supported", want)
		}
		v, _ = digestio.NewVerifier(ctxReader{ctx, r}, want, -1)
	}
	if err := s.EnsureSpace(ctx, 0); err != nil {
		return "", 0, err
	}
	tmp, err := digestio.CreateTemp(filepath.Join(s.root, "tmp"), tmpPrefix())
	if err != nil {
		return "", 0, s.noSpace(ctx, err)
	}
	defer tmp.Abort()
	if _, err := io.Copy(tmp, v); err != nil {
		return "", 0, fmt.Errorf("writing blob: %w", s.noSpace(ctx, err))
	}
	// Pending until something names it (pending.go): if this process
	// dies first, the next one removes it.
	if err := s.notePending(ctx, v.Digest()); err != nil {
		return "", 0, err
	}
	if err := tmp.Commit(s.blobPath(v.Digest())); err != nil {
		return "", 0, s.noSpace(ctx, err)
	}
	return v.Digest(), v.Size(), nil
}

// PutBlobBytes stores b (see PutBlob).
func (s *Store) PutBlobBytes(ctx context.Context, b []byte) (digest.Digest, error) {
	d, _, err := s.PutBlob(ctx, "", bytesReader(b))
	return d, err
}

// OpenBlob opens a stored blob.
func (s *Store) OpenBlob(d digest.Digest) (*os.File, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %w", d, err)
	}
	f, err := os.Open(s.blobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrBlobUnknown, d)
	}
	return f, err
}

// ReadBlob reads a whole stored blob of at most limit bytes.
func (s *Store) ReadBlob(d digest.Digest, limit int64) ([]byte, error) {
	f, err := s.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s is over the %d-byte limit", d, limit)
	}
	return b, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// countingHash hashes and counts what is written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func newCountingHash() *countingHash { return &countingHash{h: sha256.New()} }

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

func (c *countingHash) digest() digest.Digest { return digest.NewDigest(digest.SHA256, c.h) }
