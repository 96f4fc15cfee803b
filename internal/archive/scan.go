package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"

	"github.com/kiln-build/kiln/internal/idmap"
)

// Errors of ScanLayer; match them with errors.Is.
var (
	// ErrTooBig: the layer's files would need more bytes than allowed.
	ErrTooBig = errors.New("layer claims more space than is free")
	// ErrTrailingData: more than MaxTrailing bytes follow the end of the
	// archive (a decompression bomb hides there: nothing reads them).
	ErrTrailingData = errors.New("data after the end of the archive")
	// ErrNotTar: the layer is not a tar archive.
	ErrNotTar = errors.New("layer is not a tar archive")
)

// MaxTrailing is how many bytes may follow a layer's end-of-archive
// blocks: tar writers pad to their record size (GNU tar's is 10 KiB).
const MaxTrailing = 1 << 20

// ScanLayer reads a whole uncompressed layer tar from r, checking it as a
// layer must be before anything of it is stored: a tar archive, whose
// files claim no more than maxBytes in all (the space the store has; 0
// for no limit), followed by at most MaxTrailing bytes, and in a user
// namespace (a rootless kiln) owned only by IDs the namespace maps
// (errors wrap idmap.ErrUnmapped). It stops at the
// first problem, so a stream that claims a TiB or hides a bomb after its
// end costs no more than its honest part. It returns the bytes read.
func ScanLayer(r io.Reader, maxBytes int64) (int64, error) {
	cr := &countReader{r: r}
	tr := tar.NewReader(cr)
	var claimed int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return cr.n, fmt.Errorf("%w: %v", ErrNotTar, err)
		}
		if err := idmap.CheckOwner(fmt.Sprintf("%q in the layer", h.Name), h.Uid, h.Gid); err != nil {
			return cr.n, err
		}
		claimed += h.Size
		if maxBytes > 0 && claimed > maxBytes {
			return cr.n, fmt.Errorf("%w: %q alone claims %d bytes, %d in all so far, and there are %d", ErrTooBig, h.Name, h.Size, claimed, maxBytes)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return cr.n, fmt.Errorf("%w: reading %q: %v", ErrNotTar, h.Name, err)
		}
	}
	n, err := io.Copy(io.Discard, io.LimitReader(cr, MaxTrailing+1))
	if err != nil {
		return cr.n, err
	}
	if n > MaxTrailing {
		return cr.n, fmt.Errorf("%w: more than %d bytes", ErrTrailingData, MaxTrailing)
	}
	return cr.n, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
