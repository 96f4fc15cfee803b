// Package digestio moves content between readers and files with its
// identity checked. It is the one owner, for the store and every
// transport, of
//   - the verifying reader: bytes pass through and are checked against
//     the digest and size a descriptor claims (Verifier);
//   - documents (manifests, indexes, configs) read whole under
//     image.MaxDocumentSize (ReadDocument, VerifyDocument, ReadVerified);
//   - the atomic file write: temporary file beside the target, fsync,
//     rename, fsync of the directory (File, WriteAtomic, WriteFileAtomic),
//     and the blob write that verifies on the way (WriteBlob).
//
// It sits below both internal/store and internal/transport, which may not
// import each other, so that both check content the same way and report
// the same sentinel errors.
package digestio

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/opencontainers/go-digest"
)

var (
	// ErrDigestMismatch reports content whose digest differs from the one claimed.
	ErrDigestMismatch = errors.New("content does not match its digest")
	// ErrSizeMismatch reports content shorter or longer than the size claimed.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrTooLarge reports a document beyond image.MaxDocumentSize.
	ErrTooLarge = errors.New("document too large")
)

// Verifier is a reader that passes through the bytes of an underlying reader
// and, at EOF, returns an error instead of io.EOF if the content did not
// match the expected digest and size. It never reads more than size+1 bytes.
// It is not safe for concurrent use.
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

// NewDigester wraps r so that it computes the sha256 digest and the size of
// what passes through, for content whose digest is not known beforehand; it
// verifies nothing.
func NewDigester(r io.Reader) *Verifier {
	return &Verifier{r: r, size: -1, digest: digest.SHA256.Digester()}
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
	if got := v.digest.Digest(); v.want != "" && got != v.want {
		return fmt.Errorf("blob %s: %w: it hashes to %s", v.want, ErrDigestMismatch, got)
	}
	return nil
}

// ReadDocument reads a whole manifest, index or config from r, refusing more
// than image.MaxDocumentSize bytes.
func ReadDocument(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, image.MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > image.MaxDocumentSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, image.MaxDocumentSize)
	}
	return b, nil
}

// VerifyDocument checks that raw hashes to want (when want is not empty) and
// is within image.MaxDocumentSize.
func VerifyDocument(raw []byte, want digest.Digest) error {
	if len(raw) > image.MaxDocumentSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), image.MaxDocumentSize)
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
	if size > image.MaxDocumentSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, limit %d", want, ErrTooLarge, size, image.MaxDocumentSize)
	}
	v, err := NewVerifier(r, want, size)
	if err != nil {
		return nil, err
	}
	return ReadDocument(v)
}

// OpenFile opens a blob file and returns it with its size; callers name
// what they were opening in the error they wrap around it.
func OpenFile(path string) (io.ReadCloser, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}
