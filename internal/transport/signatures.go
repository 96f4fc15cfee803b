package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/transport/registry"
)

// Signature blobs are in containers/image's serialization: an OpenPGP
// message for simple signing, or a zero byte, "sigstore-json", a
// newline and {"mimeType","payload","annotations"} for cosign
// signatures (internal/signature reads them).

// SignatureSource is implemented by sources that can hold signatures.
type SignatureSource interface {
	// Signatures returns the signature blobs of the manifest with
	// digest d (the top-level one, or an instance of an index); none
	// is not an error.
	Signatures(ctx context.Context, d digest.Digest) ([][]byte, error)
}

// SignatureDestination is implemented by destinations that can keep
// signatures. PutSignatures is called after PutManifest and before
// Commit with every signature the manifest with digest d is to have
// (those already there may be replaced).
type SignatureDestination interface {
	PutSignatures(ctx context.Context, d digest.Digest, sigs [][]byte) error
}

// ErrSignaturesUnsupported reports signatures for a destination that
// cannot keep them.
var ErrSignaturesUnsupported = errors.New("the destination cannot store signatures")

// Signatures returns the signatures src has for the manifest d, none
// when its transport keeps none.
func Signatures(ctx context.Context, src Source, d digest.Digest) ([][]byte, error) {
	ss, ok := src.(SignatureSource)
	if !ok {
		return nil, nil
	}
	return ss.Signatures(ctx, d)
}

const (
	// sigstoreFormatPrefix starts a sigstore blob.
	sigstoreFormatPrefix = "\x00sigstore-json\n"
	maxSignatureSize     = 4 << 20
	maxSignatures        = 128
)

type sigstoreBlob struct {
	MIMEType    string            `json:"mimeType"`
	Payload     []byte            `json:"payload"`
	Annotations map[string]string `json:"annotations"`
}

func isSigstoreBlob(b []byte) bool { return bytes.HasPrefix(b, []byte(sigstoreFormatPrefix)) }

// attachmentTag is cosign's tag for the signatures of manifest d.
func attachmentTag(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", err
	}
	return d.Algorithm().String() + "-" + d.Encoded() + ".sig", nil
}

// registrySignatures reads the signatures of manifest d of the image
// named full ("reg/repo:tag") in repository repo: from the registry's
// signature extension when it has one, else the lookaside store
// registries.d names; then cosign's attachment tag.
func registrySignatures(ctx context.Context, c *registry.Client, full, repo string, d digest.Digest, sys *SystemContext) ([][]byte, error) {
	conf, err := loadSignatureStorage(sys)
	if err != nil {
		return nil, err
	}
	ext, err := c.SupportsSignatures(ctx)
	if err != nil {
		return nil, err
	}
	var sigs [][]byte
	if ext {
		sigs, err = c.ExtensionSignatures(ctx, d)
	} else {
		var base *url.URL
		if base, err = conf.lookasideBase(full, repo, false); err == nil {
			sigs, err = readLookaside(ctx, base, d)
		}
	}
	if err != nil {
		return nil, err
	}
	if conf.useAttachments(full, repo) {
		att, err := readAttachments(ctx, c, d)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, att...)
	}
	return sigs, nil
}

// lookasideURL is BASE@ALGO=HEX/signature-N.
func lookasideURL(base *url.URL, d digest.Digest, n int) (*url.URL, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	u := *base
	u.Path = fmt.Sprintf("%s@%s=%s/signature-%d", u.Path, d.Algorithm(), d.Encoded(), n)
	return &u, nil
}

// readLookaside reads signature-1, signature-2, … until one is missing.
func readLookaside(ctx context.Context, base *url.URL, d digest.Digest) ([][]byte, error) {
	var out [][]byte
	for n := 1; n <= maxSignatures; n++ {
		u, err := lookasideURL(base, d, n)
		if err != nil {
			return nil, err
		}
		b, err := readLookasideOne(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("reading signature %s: %w", u.Redacted(), err)
		}
		if b == nil {
			break
		}
		out = append(out, b)
	}
	return out, nil
}

// readLookasideOne returns nil, nil for a missing signature.
func readLookasideOne(ctx context.Context, u *url.URL) ([]byte, error) {
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readLimited(f)
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return readLimited(resp.Body)
		case http.StatusNotFound:
			return nil, nil
		}
		return nil, fmt.Errorf("answered %s", resp.Status)
	}
	return nil, fmt.Errorf("unsupported lookaside scheme %q", u.Scheme)
}

// readVerified reads a small blob, verifying it against desc.
func readVerified(r io.Reader, desc ocispec.Descriptor) ([]byte, error) {
	v, err := digestio.NewVerifier(r, desc.Digest, desc.Size)
	if err != nil {
		return nil, err
	}
	return readLimited(v)
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSignatureSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSignatureSize {
		return nil, fmt.Errorf("%w: a signature over %d bytes", ErrTooLarge, maxSignatureSize)
	}
	return b, nil
}

// writeLookaside replaces the signatures of d in a file:// store: sigs
// as signature-1… and any after them removed.
func writeLookaside(base *url.URL, d digest.Digest, sigs [][]byte) error {
	if base.Scheme != "file" {
		return fmt.Errorf("writing signatures to %s: only a file:// lookaside can be written; configure lookaside-staging in registries.d", base.Redacted())
	}
	for i, s := range sigs {
		u, err := lookasideURL(base, d, i+1)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
			return fmt.Errorf("writing signature: %w", err)
		}
		if err := digestio.WriteFileAtomic(u.Path, s, 0o644); err != nil {
			return fmt.Errorf("writing signature: %w", err)
		}
	}
	for n := len(sigs) + 1; ; n++ {
		u, err := lookasideURL(base, d, n)
		if err != nil {
			return err
		}
		if err := os.Remove(u.Path); errors.Is(err, os.ErrNotExist) {
			return nil
		} else if err != nil {
			return fmt.Errorf("removing old signature: %w", err)
		}
	}
}

// readAttachments reads cosign's "sha256-HEX.sig" manifest: each layer
// is a payload, its annotations carry the signature.
func readAttachments(ctx context.Context, c *registry.Client, d digest.Digest) ([][]byte, error) {
	m, err := attachmentManifest(ctx, c, d)
	if err != nil || m == nil {
		return nil, err
	}
	var out [][]byte
	for _, l := range m.Layers {
		if l.Size > maxSignatureSize {
			return nil, fmt.Errorf("signature payload %s: %w", l.Digest, ErrTooLarge)
		}
		rc, _, err := c.GetBlob(ctx, l.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading signature payload: %w", err)
		}
		payload, err := readVerified(rc, l)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("reading signature payload %s: %w", l.Digest, err)
		}
		blob, err := json.Marshal(sigstoreBlob{MIMEType: l.MediaType, Payload: payload, Annotations: l.Annotations})
		if err != nil {
			return nil, err
		}
		out = append(out, append([]byte(sigstoreFormatPrefix), blob...))
	}
	return out, nil
}

// attachmentManifest returns the signature manifest of d, nil if none.
func attachmentManifest(ctx context.Context, c *registry.Client, d digest.Digest) (*ocispec.Manifest, error) {
	tag, err := attachmentTag(d)
	if err != nil {
		return nil, err
	}
	raw, _, _, err := c.GetManifest(ctx, tag)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading signatures of %s: %w", d, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("parsing signature manifest %s: %w", tag, err)
	}
	return &m, nil
}

// writeAttachments adds the sigstore signatures to cosign's signature
// manifest of d (those already there are kept, duplicates skipped),
// as cosign and containers/image do.
func writeAttachments(ctx context.Context, c *registry.Client, d digest.Digest, sigs [][]byte) error {
	m, err := attachmentManifest(ctx, c, d)
	if err != nil {
		return err
	}
	var cfg ocispec.Image
	if m == nil {
		m = &ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest}
		m.SchemaVersion = 2
		cfg.RootFS.Type = "layers"
	} else {
		rc, _, err := c.GetBlob(ctx, m.Config.Digest)
		if err != nil {
			return fmt.Errorf("reading signature config: %w", err)
		}
		raw, err := readVerified(rc, m.Config)
		rc.Close()
		if err != nil {
			return fmt.Errorf("reading signature config: %w", err)
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return fmt.Errorf("parsing signature config: %w", err)
		}
	}
	added := false
	for _, s := range sigs {
		var b sigstoreBlob
		if err := json.Unmarshal(s[len(sigstoreFormatPrefix):], &b); err != nil {
			return fmt.Errorf("parsing sigstore signature: %w", err)
		}
		desc := ocispec.Descriptor{MediaType: b.MIMEType, Digest: digest.FromBytes(b.Payload), Size: int64(len(b.Payload)), Annotations: b.Annotations}
		dup := false
		for _, l := range m.Layers {
			if l.MediaType == desc.MediaType && l.Digest == desc.Digest && maps.Equal(l.Annotations, desc.Annotations) {
				dup = true
			}
		}
		if dup {
			continue
		}
		if err := putBytes(ctx, c, desc, b.Payload); err != nil {
			return err
		}
		m.Layers = append(m.Layers, desc)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, desc.Digest)
		added = true
	}
	if !added {
		return nil
	}
	cfgRaw, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgRaw), Size: int64(len(cfgRaw))}
	if err := putBytes(ctx, c, m.Config, cfgRaw); err != nil {
		return err
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tag, err := attachmentTag(d)
	if err != nil {
		return err
	}
	return c.PutManifest(ctx, tag, raw, ocispec.MediaTypeImageManifest)
}

func putBytes(ctx context.Context, c *registry.Client, desc ocispec.Descriptor, b []byte) error {
	if ok, err := c.HasBlob(ctx, desc.Digest); err != nil {
		return err
	} else if ok {
		return nil
	}
	if err := c.PutBlob(ctx, desc, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("uploading %s: %w", desc.Digest, err)
	}
	return nil
}

// Signatures implements SignatureSource for a registry image.
func (s *cachedSource) Signatures(ctx context.Context, d digest.Digest) ([][]byte, error) {
	return registrySignatures(ctx, s.Source.Client(), s.name, repoOf(s.name), d, s.sys)
}

// repoOf strips the tag or digest of "reg/repo:tag".
func repoOf(full string) string {
	if i := strings.Index(full, "@"); i >= 0 {
		return full[:i]
	}
	if i := strings.LastIndex(full, ":"); i > strings.LastIndex(full, "/") {
		return full[:i]
	}
	return full
}

// registryDestination adds signature storage to a registry destination.
type registryDestination struct {
	*registry.Destination
	name string // "reg/repo:tag" as asked for
	sys  *SystemContext
}

// PutSignatures writes simple-signing signatures to the lookaside store
// registries.d names for writing and cosign signatures to the
// attachment tag.
func (d *registryDestination) PutSignatures(ctx context.Context, md digest.Digest, sigs [][]byte) error {
	return d.putSignaturesWith(ctx, d.Destination.Client(), md, sigs)
}

func (d *registryDestination) putSignaturesWith(ctx context.Context, c *registry.Client, md digest.Digest, sigs [][]byte) error {
	var simple, sigstore [][]byte
	for _, s := range sigs {
		if isSigstoreBlob(s) {
			sigstore = append(sigstore, s)
		} else {
			simple = append(simple, s)
		}
	}
	conf, err := loadSignatureStorage(d.sys)
	if err != nil {
		return err
	}
	repo := repoOf(d.name)
	ext := false
	if len(simple) > 0 {
		if ext, err = c.SupportsSignatures(ctx); err != nil {
			return err
		}
	}
	if ext {
		have, err := c.ExtensionSignatures(ctx, md)
		if err != nil {
			return err
		}
		for _, s := range simple {
			if !slices.ContainsFunc(have, func(h []byte) bool { return bytes.Equal(h, s) }) {
				if err := c.PutExtensionSignature(ctx, md, s); err != nil {
					return err
				}
			}
		}
	} else if len(simple) > 0 {
		base, err := conf.lookasideBase(d.name, repo, true)
		if err != nil {
			return err
		}
		if err := writeLookaside(base, md, simple); err != nil {
			return err
		}
	}
	if len(sigstore) > 0 {
		if !conf.useAttachments(d.name, repo) {
			return fmt.Errorf("writing cosign signatures of %s: use-sigstore-attachments is off in registries.d", d.name)
		}
		if err := writeAttachments(ctx, c, md, sigstore); err != nil {
			return fmt.Errorf("writing cosign signatures of %s: %w", d.name, err)
		}
	}
	return nil
}

var (
	_ SignatureSource      = (*cachedSource)(nil)
	_ SignatureDestination = (*registryDestination)(nil)
)

// DockerReference returns the full Docker reference a docker:// image
// (or a short name, resolved to its first candidate) is written to,
// "reg/repo:tag" or "reg/repo@digest": what a signature of it names.
func DockerReference(ref Ref, sys *SystemContext) (string, error) {
	r, err := registryRef(ref, sys)
	if err != nil {
		return "", err
	}
	return dockerName(r), nil
}

// LocalPath returns the path and image name of a reference to local
// files (oci:, oci-archive:, docker-archive:, dir:); ok is false for
// the others.
func LocalPath(ref Ref) (path, name string, ok bool) {
	switch r := ref.(type) {
	case *ociRef:
		return r.path, r.ref, true
	case *dockerArchiveRef:
		return r.path, "", true
	case *dirRef:
		return r.path, "", true
	}
	return "", "", false
}
