package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/transport/registry"
)

// Referrer is an artifact manifest that refers to an image's manifest
// (its subject), with the content of every blob it names.
type Referrer struct {
	Manifest     []byte
	MediaType    string
	ArtifactType string
	Annotations  map[string]string
	Blobs        map[digest.Digest][]byte
}

// PutReferrers writes artifacts referring to the manifest subject, which
// is already in the registry repository of ref: their blobs, each
// manifest by digest, signed with sign when it is set, and, for a
// registry without the referrers API, the referrers tag schema's index
// ("sha256-HEX") listing them.
func PutReferrers(ctx context.Context, ref Ref, sys *SystemContext, subject digest.Digest, refs []Referrer, sign func(context.Context, digest.Digest) ([][]byte, error)) error {
	if len(refs) == 0 {
		return nil
	}
	if ref.Transport() != TransportDocker {
		return fmt.Errorf("%w: attestations are pushed to registries only, not %s", ErrUnsupported, ref)
	}
	c, ep, err := registryClient(ctx, ref, sys, []string{"pull", "push"})
	if err != nil {
		return err
	}
	var descs []ocispec.Descriptor
	for _, r := range refs {
		for d, b := range r.Blobs {
			if err := putBytes(ctx, c, ocispec.Descriptor{Digest: d, Size: int64(len(b))}, b); err != nil {
				return fmt.Errorf("pushing attestation blob: %w", err)
			}
		}
		d := digest.FromBytes(r.Manifest)
		if err := c.PutManifest(ctx, d.String(), r.Manifest, r.MediaType); err != nil {
			return fmt.Errorf("pushing attestation %s: %w", d, err)
		}
		if sign != nil {
			sigs, err := sign(ctx, d)
			if err != nil {
				return err
			}
			dst := &registryDestination{name: dockerName(ep), sys: sys}
			if err := dst.putSignaturesWith(ctx, c, d, sigs); err != nil {
				return fmt.Errorf("signing attestation %s: %w", d, err)
			}
		}
		descs = append(descs, ocispec.Descriptor{MediaType: r.MediaType, Digest: d, Size: int64(len(r.Manifest)), ArtifactType: r.ArtifactType, Annotations: r.Annotations})
	}
	if _, ok, err := c.Referrers(ctx, subject); err != nil || ok {
		return err
	}
	return updateReferrersTag(ctx, c, subject, descs)
}

// referrersTag is the referrers tag schema's tag of manifest d.
func referrersTag(d digest.Digest) string { return d.Algorithm().String() + "-" + d.Encoded() }

// updateReferrersTag adds descs to the index at the referrers tag of
// subject.
func updateReferrersTag(ctx context.Context, c *registry.Client, subject digest.Digest, descs []ocispec.Descriptor) error {
	idx, err := referrersIndex(ctx, c, subject)
	if err != nil {
		return err
	}
	for _, d := range descs {
		dup := false
		for _, m := range idx.Manifests {
			dup = dup || m.Digest == d.Digest
		}
		if !dup {
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return c.PutManifest(ctx, referrersTag(subject), raw, ocispec.MediaTypeImageIndex)
}

// referrersIndex reads the referrers of subject: from the API when the
// registry has it, else from the referrers tag (empty when missing).
func referrersIndex(ctx context.Context, c *registry.Client, subject digest.Digest) (ocispec.Index, error) {
	if idx, ok, err := c.Referrers(ctx, subject); err != nil || ok {
		return idx, err
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	raw, _, _, err := c.GetManifest(ctx, referrersTag(subject))
	if errors.Is(err, registry.ErrNotFound) {
		return idx, nil
	}
	if err != nil {
		return idx, fmt.Errorf("reading the referrers of %s: %w", subject, err)
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return idx, fmt.Errorf("parsing the referrers of %s: %w", subject, err)
	}
	return idx, nil
}

// RemoteReferrers lists the artifacts referring to the manifest subject
// in the registry repository of ref, with their manifests and blobs.
func RemoteReferrers(ctx context.Context, ref Ref, sys *SystemContext, subject digest.Digest) ([]Referrer, error) {
	c, _, err := registryClient(ctx, ref, sys, []string{"pull"})
	if err != nil {
		return nil, err
	}
	idx, err := referrersIndex(ctx, c, subject)
	if err != nil {
		return nil, err
	}
	var out []Referrer
	for _, d := range idx.Manifests {
		raw, mt, _, err := c.GetManifest(ctx, d.Digest.String())
		if err != nil {
			return nil, err
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("parsing referrer %s: %w", d.Digest, err)
		}
		r := Referrer{Manifest: raw, MediaType: mt, ArtifactType: m.ArtifactType, Annotations: m.Annotations, Blobs: map[digest.Digest][]byte{}}
		for _, l := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if l.Size > maxSignatureSize {
				continue
			}
			rc, _, err := c.GetBlob(ctx, l.Digest)
			if err != nil {
				return nil, err
			}
			b, err := readVerified(rc, l)
			rc.Close()
			if err != nil {
				return nil, err
			}
			r.Blobs[l.Digest] = b
		}
		out = append(out, r)
	}
	return out, nil
}

// RemoteManifestDescriptor returns the descriptor of the manifest d in
// the registry repository of ref.
func RemoteManifestDescriptor(ctx context.Context, ref Ref, sys *SystemContext, d digest.Digest) (ocispec.Descriptor, error) {
	c, _, err := registryClient(ctx, ref, sys, []string{"pull"})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	raw, mt, _, err := c.GetManifest(ctx, d.String())
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}, nil
}
