package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/transport/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CopyOptions tune Copy. The zero value copies the image of this machine's
// platform as it is.
type CopyOptions struct {
	// All copies every instance of an index; otherwise Platform picks one.
	All bool
	// Platform selects the image of an index; zero means this machine.
	Platform Platform
	// Format converts manifests; FormatKeep converts only when the
	// destination requires it, and then the manifest digest changes.
	Format Format
	// Compression compresses uncompressed layers; CompressionLevel is the
	// level (0 for the default). With ForceCompression, layers compressed
	// otherwise are compressed again with it too.
	Compression      Compression
	CompressionLevel int
	ForceCompression bool
	// RemoveSignatures drops the signatures of the source's manifest;
	// otherwise they are copied along (see CopySignatures).
	RemoveSignatures bool
	// Sign, when set, returns new signatures of the manifest written
	// (its digest given); they are stored beside the copied ones.
	Sign func(ctx context.Context, manifest digest.Digest) ([][]byte, error)
	// Parallel bounds concurrent blob copies (default 6).
	Parallel int
	// Retry is how many times a blob copy that failed on a transient error
	// (a dropped connection, a 5xx answer) is retried; RetryDelay the first
	// delay. Zero Retry means 3, negative none.
	Retry      int
	RetryDelay time.Duration
	// Progress, if set, receives blob events; it must be safe for
	// concurrent calls.
	Progress func(ProgressEvent)
	// TempDir holds temporary files (compression); "" for the default.
	TempDir string
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

func (o *CopyOptions) platform() Platform {
	p := o.Platform
	if p.OS == "" {
		p.OS = runtime.GOOS
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	return p
}

// Copy copies the image (or index) of src to dst and commits it, returning
// the digest of the manifest written. Every manifest and blob is verified
// against its digest; manifests and configs over 4 MiB are refused; blobs
// dst already has are skipped. When no conversion is needed the manifest
// bytes, and so the digest, are kept.
func Copy(ctx context.Context, dst Destination, src Source, opts CopyOptions) (digest.Digest, error) {
	c := &copier{dst: dst, src: src, opts: opts, log: opts.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if m, ok := dst.(CrossRepoMounter); ok {
		if bl, ok := src.(BlobLocator); ok {
			m.AddMountSource(bl.BlobRepository())
		}
		if br, ok := src.(BlobRepositories); ok {
			for _, repo := range br.BlobRepositories(ctx) {
				m.AddMountSource(repo)
			}
		}
	}
	raw, mt, err := src.Manifest(ctx, nil)
	if err != nil {
		return "", err
	}
	if err := digestio.VerifyDocument(raw, ""); err != nil {
		return "", fmt.Errorf("reading manifest: %w", err)
	}
	var d digest.Digest
	switch {
	case image.IsIndex(mt) && opts.All:
		d, err = c.copyIndex(ctx, raw, mt)
	case image.IsIndex(mt):
		d, err = c.copyPlatform(ctx, raw)
	default:
		var desc ocispec.Descriptor
		desc, err = c.copyImage(ctx, raw, mt, nil)
		d = desc.Digest
	}
	if err != nil {
		return "", err
	}
	if err := c.copySignatures(ctx, raw, mt, d); err != nil {
		return "", err
	}
	if err := dst.Commit(ctx); err != nil {
		return "", fmt.Errorf("committing image: %w", err)
	}
	c.recordRepositories(ctx)
	return d, nil
}

// recordRepositories tells an end that remembers where its blobs are
// which registry repository the other end is.
func (c *copier) recordRepositories(ctx context.Context) {
	c.mu.Lock()
	blobs := c.blobs
	c.mu.Unlock()
	if bl, ok := c.src.(BlobLocator); ok {
		if r, ok := c.dst.(BlobRepositoryRecorder); ok {
			r.RecordBlobRepository(ctx, bl.BlobRepository(), blobs)
		}
	}
	if bl, ok := c.dst.(BlobLocator); ok {
		if r, ok := c.src.(BlobRepositoryRecorder); ok {
			r.RecordBlobRepository(ctx, bl.BlobRepository(), blobs)
		}
	}
}

type copier struct {
	dst  Destination
	src  Source
	opts CopyOptions
	log  *slog.Logger

	mu    sync.Mutex
	blobs []digest.Digest // every blob now at the destination, as written
}

func (c *copier) copied(d digest.Digest) {
	c.mu.Lock()
	c.blobs = append(c.blobs, d)
	c.mu.Unlock()
}

func parseIndex(raw []byte) (ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return idx, fmt.Errorf("parsing index: %w", err)
	}
	for _, m := range idx.Manifests {
		if err := m.Digest.Validate(); err != nil {
			return idx, fmt.Errorf("index lists invalid digest %q: %w", m.Digest, err)
		}
	}
	return idx, nil
}

// copyPlatform copies the instance of the index that matches the platform
// as a standalone image.
func (c *copier) copyPlatform(ctx context.Context, raw []byte) (digest.Digest, error) {
	idx, err := parseIndex(raw)
	if err != nil {
		return "", err
	}
	want := c.opts.platform()
	desc, err := MatchPlatform(idx, want)
	if err != nil {
		return "", err
	}
	child, mt, err := c.instance(ctx, desc)
	if err != nil {
		return "", err
	}
	out, err := c.copyImage(ctx, child, mt, nil)
	return out.Digest, err
}

// MatchPlatform returns the manifest of idx for platform p. The variant is
// compared only when p has one.
func MatchPlatform(idx ocispec.Index, p Platform) (ocispec.Descriptor, error) {
	for _, m := range idx.Manifests {
		if m.Platform == nil || m.Platform.OS != p.OS || m.Platform.Architecture != p.Architecture {
			continue
		}
		if p.Variant != "" && m.Platform.Variant != p.Variant {
			continue
		}
		return m, nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("%w: %s/%s%s", ErrNoMatchingPlatform, p.OS, p.Architecture, prefixed(p.Variant))
}

func prefixed(v string) string {
	if v == "" {
		return ""
	}
	return "/" + v
}

// instance reads and verifies one child manifest of an index.
func (c *copier) instance(ctx context.Context, desc ocispec.Descriptor) ([]byte, string, error) {
	raw, mt, err := c.src.Manifest(ctx, &desc.Digest)
	if err != nil {
		return nil, "", err
	}
	if err := digestio.VerifyDocument(raw, desc.Digest); err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	if mt == "" {
		mt = desc.MediaType
	}
	return raw, mt, nil
}

// copyIndex copies every instance, then the index, converted when needed.
func (c *copier) copyIndex(ctx context.Context, raw []byte, mt string) (digest.Digest, error) {
	idx, err := parseIndex(raw)
	if err != nil {
		return "", err
	}
	f, err := targetFormat(mt, c.opts.Format, c.dst.SupportedManifestTypes())
	if err != nil {
		return "", err
	}
	changed := f != FormatKeep
	for i, m := range idx.Manifests {
		if image.IsIndex(m.MediaType) {
			return "", fmt.Errorf("nested index %s: %w", m.Digest, ErrUnsupported)
		}
		child, cmt, err := c.instance(ctx, m)
		if err != nil {
			return "", err
		}
		out, err := c.copyImage(ctx, child, cmt, &m.Digest)
		if err != nil {
			return "", fmt.Errorf("copying instance %s: %w", m.Digest, err)
		}
		if err := c.copyInstanceSignatures(ctx, m.Digest, out.Digest); err != nil {
			return "", fmt.Errorf("copying instance %s: %w", m.Digest, err)
		}
		if out.Digest != m.Digest {
			changed = true
			idx.Manifests[i].Digest, idx.Manifests[i].Size, idx.Manifests[i].MediaType = out.Digest, out.Size, out.MediaType
		}
	}
	if changed {
		raw, mt, err = convertIndex(idx, f)
		if err != nil {
			return "", err
		}
	}
	if err := c.dst.PutManifest(ctx, raw, mt, nil); err != nil {
		return "", fmt.Errorf("writing index: %w", err)
	}
	return digest.FromBytes(raw), nil
}

// copyImage copies the config and layers of one manifest, then the
// manifest itself, and returns the descriptor of what was written.
func (c *copier) copyImage(ctx context.Context, raw []byte, mt string, instance *digest.Digest) (ocispec.Descriptor, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("parsing manifest: %w", err)
	}
	if m.Config.Size > image.MaxDocumentSize {
		return ocispec.Descriptor{}, fmt.Errorf("config %s: %w: %d bytes", m.Config.Digest, ErrTooLarge, m.Config.Size)
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if err := d.Digest.Validate(); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("manifest lists invalid digest %q: %w", d.Digest, err)
		}
	}
	f, err := targetFormat(mt, c.opts.Format, c.dst.SupportedManifestTypes())
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if sc, ok := c.dst.(SpaceChecker); ok {
		if err := sc.CheckSpace(ctx, append([]ocispec.Descriptor{m.Config}, m.Layers...)); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	layers, recompressed, err := c.copyBlobs(ctx, m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if f != FormatKeep || recompressed {
		m.Layers = layers
		if m.MediaType == "" {
			m.MediaType = mt
		}
		if raw, mt, err = convertManifest(m, f); err != nil {
			return ocispec.Descriptor{}, err
		}
		if instance != nil {
			d := digest.FromBytes(raw)
			instance = &d
		}
	}
	if err := c.dst.PutManifest(ctx, raw, mt, instance); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("writing manifest: %w", err)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(raw), Size: int64(len(raw))}, nil
}

// copyBlobs copies the config and the layers, Parallel at a time. It
// returns the layer descriptors as written (changed when compressed).
func (c *copier) copyBlobs(ctx context.Context, m ocispec.Manifest) ([]ocispec.Descriptor, bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := c.opts.Parallel
	if n <= 0 {
		n = 6
	}
	sem := make(chan struct{}, n)
	out := make([]ocispec.Descriptor, len(m.Layers))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		changed  bool
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	descs := append([]ocispec.Descriptor{m.Config}, m.Layers...)
	for i, d := range descs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				fail(ctx.Err())
				return
			}
			defer func() { <-sem }()
			written, err := c.copyBlob(ctx, d, i > 0)
			if err != nil {
				fail(err)
				return
			}
			c.copied(written.Digest)
			if i > 0 {
				mu.Lock()
				out[i-1], changed = written, changed || written.Digest != d.Digest
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, changed, firstErr
}

// copyBlob copies one blob unless dst has it, retrying transient failures
// by reopening the source.
func (c *copier) copyBlob(ctx context.Context, desc ocispec.Descriptor, layer bool) (ocispec.Descriptor, error) {
	if layer && c.compresses(desc.MediaType) {
		lc, ok := c.src.(LayerCompressor)
		if !ok {
			return c.compressBlob(ctx, desc)
		}
		out := desc
		out.MediaType = compressedType(desc.MediaType, c.opts.Compression)
		var err error
		if out.Digest, out.Size, err = lc.CompressLayer(ctx, desc, c.opts.Compression.String(), c.opts.CompressionLevel, c.opts.ForceCompression); err != nil {
			return desc, fmt.Errorf("compressing layer %s: %w", desc.Digest, err)
		}
		if out.Digest != desc.Digest { // else the layer is sent as it came
			desc = out
		}
	}
	if ok, err := c.dst.HasBlob(ctx, desc); err != nil {
		return desc, err
	} else if ok {
		c.progress(ProgressEvent{Digest: desc.Digest, Size: desc.Size, Done: desc.Size, State: ProgressSkipped, Config: !layer})
		return desc, nil
	}
	err := c.retry(ctx, "copying blob "+desc.Digest.String(), func() error {
		rc, _, err := c.src.Blob(ctx, desc.Digest)
		if err != nil {
			return err
		}
		defer rc.Close()
		c.progress(ProgressEvent{Digest: desc.Digest, Size: desc.Size, State: ProgressStarted, Config: !layer})
		return c.dst.PutBlob(ctx, desc, c.progressReader(rc, desc, !layer))
	})
	if err != nil {
		return desc, fmt.Errorf("copying blob %s: %w", desc.Digest, err)
	}
	c.progress(ProgressEvent{Digest: desc.Digest, Size: desc.Size, Done: desc.Size, State: ProgressDone, Config: !layer})
	return desc, nil
}

// compresses reports whether a layer of media type mt is to be
// compressed on the way.
func (c *copier) compresses(mt string) bool {
	switch {
	case c.opts.Compression == CompressionKeep:
		return false
	case isUncompressed(mt):
		return true
	}
	return c.opts.ForceCompression && compressionOf(mt) != c.opts.Compression
}

func (c *copier) retry(ctx context.Context, what string, f func() error) error {
	n, delay := c.opts.Retry, c.opts.RetryDelay
	if n == 0 {
		n = 3
	}
	if delay <= 0 {
		delay = time.Second
	}
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || attempt >= n || !registry.Retryable(err) || ctx.Err() != nil {
			return err
		}
		c.log.Debug("retrying", "op", what, "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay *= 2
	}
}

func (c *copier) progress(e ProgressEvent) {
	if c.opts.Progress != nil {
		c.opts.Progress(e)
	}
}

func (c *copier) progressReader(r io.Reader, desc ocispec.Descriptor, config bool) io.Reader {
	if c.opts.Progress == nil {
		return r
	}
	return &progressReader{r: r, desc: desc, config: config, f: c.opts.Progress}
}

type progressReader struct {
	r      io.Reader
	desc   ocispec.Descriptor
	config bool
	done   int64
	f      func(ProgressEvent)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		p.f(ProgressEvent{Digest: p.desc.Digest, Size: p.desc.Size, Done: p.done, State: ProgressRunning, Config: p.config})
	}
	return n, err
}
