// Package blobio verifies blobs and documents as they stream between
// transports: every byte that crosses a transport is checked against the
// digest and size its descriptor claims, and documents (manifests, indexes,
// configs) are read with a hard size limit.
package blobio

import (
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
)

// MaxDocumentSize bounds manifests, indexes and configs: anything larger is
// refused before it is parsed or stored.
const MaxDocumentSize = 4 << 20

var (
	// ErrDigestMismatch reports content whose digest differs from the one claimed.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSizeMismatch reports content shorter or longer than the size claimed.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrTooLarge reports a document beyond MaxDocumentSize.
	ErrTooLarge = errors.New("document too large")
)

// Verifier is a reader that passes through the bytes of an underlying reader
// and, at EOF, returns an error instead of io.EOF if the content did not
// match the expected digest and size. It never reads more than size+1 bytes.
type Verifier struct {
	r      io.Reader
	want   digest.Digest
	size   int64
	n      int64
	digest digest.Digester
	err    error
}

// NewVerifier wraps r so that it verifies want (required) and size (-1 when
// unknown). The caller must read to EOF for the check to run.
func NewVerifier(r io.Reader, want digest.Digest, size int64) (*Verifier, error) {
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("verifying blob: invalid digest %q: %w", want, err)
	}
	if size >= 0 {
		r = io.LimitReader(r, size+1)
	}
	return &Verifier{r: r, want: want, size: size, digest: want.Algorithm().Digester()}, nil
}

// Read implements io.Reader.
func (v *Verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.digest.Hash().Write(p[:n])
	if v.size >= 0 && v.n > v.size {
		v.err = fmt.Errorf("blob %s: %w: more than %d bytes", v.want, ErrSizeMismatch, v.size)
		return 0, v.err
	}
	if errors.Is(err, io.EOF) {
		v.err = v.check()
		if v.err == nil {
			v.err = io.EOF
		}
		return n, v.err
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

// Verified reports whether the whole content was read and matched.
func (v *Verifier) Verified() bool { return errors.Is(v.err, io.EOF) }

// Digest returns the digest of what was read so far.
func (v *Verifier) Digest() digest.Digest { return v.digest.Digest() }

// Size returns the number of bytes read so far.
func (v *Verifier) Size() int64 { return v.n }

func (v *Verifier) check() error {
	if v.size >= 0 && v.n != v.size {
		return fmt.Errorf("blob %s: %w: got %d bytes, want %d", v.want, ErrSizeMismatch, v.n, v.size)
	}
	if got := v.digest.Digest(); got != v.want {
		return fmt.Errorf("blob %s: %w: content hashes to %s", v.want, ErrDigestMismatch, got)
	}
	return nil
}

// ReadDocument reads a whole manifest, index or config from r, refusing more
// than MaxDocumentSize bytes.
func ReadDocument(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxDocumentSize)
	}
	return b, nil
}

// VerifyDocument checks that raw hashes to want (when want is not empty) and
// is within MaxDocumentSize.
func VerifyDocument(raw []byte, want digest.Digest) error {
	if len(raw) > MaxDocumentSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), MaxDocumentSize)
	}
	if want == "" {
		return nil
	}
	if err := want.Validate(); err != nil {
		return fmt.Errorf("invalid digest %q: %w", want, err)
	}
	if got := want.Algorithm().FromBytes(raw); got != want {
		return fmt.Errorf("%w: document hashes to %s, want %s", ErrDigestMismatch, got, want)
	}
	return nil
}

// ReadVerified reads a document from r and verifies it against want and size.
func ReadVerified(r io.Reader, want digest.Digest, size int64) ([]byte, error) {
	if size > MaxDocumentSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, limit %d", want, ErrTooLarge, size, MaxDocumentSize)
	}
	v, err := NewVerifier(r, want, size)
	if err != nil {
		return nil, err
	}
	b, err := ReadDocument(v)
	if err != nil {
		return nil, err
	}
	return b, nil
}
