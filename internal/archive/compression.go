package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression is a stream compression kiln recognizes.
type Compression int

// The compressions Detect recognizes.
const (
	Uncompressed Compression = iota
	Gzip
	Bzip2
	Xz
	Zstd
)

// String names the compression as media types and flags spell it.
func (c Compression) String() string {
	return [...]string{"", "gzip", "bzip2", "xz", "zstd"}[c]
}

// ParseCompression parses a --compression-format value.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "gzip":
		return Gzip, nil
	case "zstd":
		return Zstd, nil
	case "", "none":
		return Uncompressed, nil
	}
	return 0, fmt.Errorf("unknown compression format %q: use gzip or zstd", s)
}

var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b, 0x08}},
	{Bzip2, []byte("BZh")},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
}

// Detect peeks at the start of r and reports its compression; the
// returned reader yields the whole stream, the peeked bytes included.
func Detect(r io.Reader) (Compression, io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return Uncompressed, br, err
	}
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.c, br, nil
		}
	}
	return Uncompressed, br, nil
}

// maxZstdWindow is the largest zstd window Decompress accepts: the zstd
// tool's own default limit (--long, level 22). A frame header claiming
// more (up to 3.75 TB) is refused instead of being allocated.
const maxZstdWindow = 128 << 20

// Decompress returns a reader of the uncompressed content of r, whatever
// its compression, and which compression that was. Its memory is bounded
// by the decoders' windows: 4 MiB for gzip, 128 MiB at most for zstd and
// 64 MiB for xz.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	c, br, err := Detect(r)
	if err != nil {
		return nil, c, fmt.Errorf("reading stream header: %w", err)
	}
	switch c {
	case Gzip:
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("opening gzip stream: %w", err)
		}
		return zr, c, nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(br)), c, nil
	case Xz:
		xr, err := newXzReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("opening xz stream: %w", err)
		}
		return io.NopCloser(xr), c, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, c, fmt.Errorf("opening zstd stream: %w", err)
		}
		return zr.IOReadCloser(), c, nil
	}
	return io.NopCloser(br), c, nil
}

// Compress returns a writer that compresses into w with c at level (0 is
// the default level); closing it flushes but does not close w.
func Compress(w io.Writer, c Compression, level int) (io.WriteCloser, error) {
	switch c {
	case Gzip:
		if level == 0 {
			level = pgzip.DefaultCompression
		}
		zw, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, fmt.Errorf("gzip level %d: %w", level, err)
		}
		return zw, nil
	case Zstd:
		lvl := zstd.SpeedDefault
		if level != 0 {
			lvl = zstd.EncoderLevelFromZstd(level)
		}
		return zstd.NewWriter(w, zstd.WithEncoderLevel(lvl))
	case Uncompressed:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("cannot compress with %s", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
