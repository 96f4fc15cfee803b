package transport

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func isUncompressed(mt string) bool {
	return mt == image.MediaTypeOCILayer || mt == image.MediaTypeDockerLayer
}

// compressionOf returns the compression of a layer media type
// (CompressionKeep for an uncompressed one).
func compressionOf(mt string) Compression {
	switch image.LayerCompression(mt) {
	case "gzip":
		return CompressionGzip
	case "zstd":
		return CompressionZstd
	}
	return CompressionKeep
}

func compressedType(mt string, c Compression) string {
	f := image.FormatOCI
	if mt == image.MediaTypeDockerLayer {
		f = image.FormatDocker
	}
	return f.LayerMediaType(c.String())
}

// compressBlob reads an uncompressed layer (verified), compresses it into
// a temporary file and copies that; it returns the new descriptor.
func (c *copier) compressBlob(ctx context.Context, desc ocispec.Descriptor) (ocispec.Descriptor, error) {
	f, err := os.CreateTemp(c.opts.TempDir, "kiln-layer-*")
	if err != nil {
		return desc, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	out := desc
	out.MediaType = compressedType(desc.MediaType, c.opts.Compression)
	err = c.retry(ctx, "compressing blob "+desc.Digest.String(), func() error {
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		d, n, err := c.compressTo(ctx, f, desc)
		out.Digest, out.Size = d, n
		return err
	})
	if err != nil {
		return desc, fmt.Errorf("compressing layer %s: %w", desc.Digest, err)
	}
	if ok, err := c.dst.HasBlob(ctx, out); err != nil || ok {
		return out, err
	}
	err = c.retry(ctx, "copying blob "+out.Digest.String(), func() error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		c.progress(ProgressEvent{Digest: out.Digest, Size: out.Size, State: ProgressStarted})
		return c.dst.PutBlob(ctx, out, c.progressReader(f, out, false))
	})
	if err != nil {
		return desc, fmt.Errorf("copying blob %s: %w", out.Digest, err)
	}
	c.progress(ProgressEvent{Digest: out.Digest, Size: out.Size, Done: out.Size, State: ProgressDone})
	return out, nil
}

func (c *copier) compressTo(ctx context.Context, w io.Writer, desc ocispec.Descriptor) (digest.Digest, int64, error) {
	rc, _, err := c.src.Blob(ctx, desc.Digest)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	v, err := digestio.NewVerifier(rc, desc.Digest, desc.Size)
	if err != nil {
		return "", 0, err
	}
	var in io.Reader = v
	switch compressionOf(desc.MediaType) {
	case CompressionGzip: // compressed again (ForceCompression)
		zr, err := pgzip.NewReader(v)
		if err != nil {
			return "", 0, err
		}
		defer zr.Close()
		in = zr
	case CompressionZstd:
		zr, err := zstd.NewReader(v)
		if err != nil {
			return "", 0, err
		}
		defer zr.Close()
		in = zr
	}
	dg := digest.SHA256.Digester()
	cw := &countWriter{w: io.MultiWriter(w, dg.Hash())}
	var zw io.WriteCloser
	if c.opts.Compression == CompressionGzip {
		level := c.opts.CompressionLevel
		if level == 0 {
			level = pgzip.DefaultCompression
		}
		zw, err = pgzip.NewWriterLevel(cw, level)
	} else {
		zopts := []zstd.EOption{}
		if c.opts.CompressionLevel != 0 {
			zopts = append(zopts, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(c.opts.CompressionLevel)))
		}
		zw, err = zstd.NewWriter(cw, zopts...)
	}
	if err != nil {
		return "", 0, err
	}
	if _, err := io.Copy(zw, in); err != nil {
		zw.Close()
		return "", 0, err
	}
	if err := zw.Close(); err != nil {
		return "", 0, err
	}
	return dg.Digest(), cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
