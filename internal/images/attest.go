package images

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/attest"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// Subject returns the descriptor of a stored image's manifest: what its
// attestations refer to.
func Subject(st *store.Store, img store.Image) (ocispec.Descriptor, error) {
	raw, err := st.ImageManifest(img)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: img.ManifestType, Digest: img.ManifestDigest, Size: int64(len(raw))}, nil
}

// Attach stores the statement about the image as an artifact referring
// to its manifest.
func Attach(ctx context.Context, st *store.Store, img store.Image, s attest.Statement) error {
	subject, err := Subject(st, img)
	if err != nil {
		return err
	}
	a, err := attest.Pack(s, subject)
	if err != nil {
		return err
	}
	return st.AddReferrer(ctx, img.ManifestDigest, store.Referrer{Digest: a.Digest, MediaType: a.MediaType, ArtifactType: a.ArtifactType, Manifest: a.Manifest, Blobs: a.Blobs})
}

// Attestation is one artifact attached to an image.
type Attestation struct {
	Digest        string           `json:"digest"`
	ArtifactType  string           `json:"artifactType"`
	PredicateType string           `json:"predicateType"`
	Statement     attest.Statement `json:"statement"`
}

// Attestations lists what is attached to a stored image, or with a
// TRANSPORT:REF of a registry, to the image there.
func Attestations(ctx context.Context, st *store.Store, name string, sys *transport.SystemContext) ([]Attestation, error) {
	var refs []store.Referrer
	if IsTransportRef(name) || strings.HasPrefix(name, "docker://") {
		r, err := transport.ParseReference(name)
		if err != nil {
			return nil, err
		}
		src, err := r.NewSource(ctx, sys)
		if err != nil {
			return nil, err
		}
		d, err := transport.ResolveDigest(ctx, src, transport.Platform{})
		src.Close()
		if err != nil {
			return nil, err
		}
		remote, err := transport.RemoteReferrers(ctx, r, sys, d)
		if err != nil {
			return nil, err
		}
		for _, rr := range remote {
			refs = append(refs, store.Referrer{Manifest: rr.Manifest, ArtifactType: rr.ArtifactType, Blobs: rr.Blobs})
		}
	} else {
		img, err := st.LookupImage(ctx, name)
		if err != nil {
			return nil, err
		}
		if refs, err = st.Referrers(ctx, img.ManifestDigest); err != nil {
			return nil, err
		}
	}
	out := []Attestation{}
	for _, r := range refs {
		s, err := attest.Unpack(r.Manifest, r.Blobs)
		if err != nil {
			return nil, err
		}
		out = append(out, Attestation{Digest: digestOf(r.Manifest), ArtifactType: r.ArtifactType, PredicateType: s.PredicateType, Statement: s})
	}
	return out, nil
}

// pushReferrers pushes the stored image's attestations after it, to a
// registry destination, signed as the image was. When the push wrote
// another manifest than the stored one (layers compressed on the way),
// each statement is made again about the manifest pushed.
func pushReferrers(ctx context.Context, st *store.Store, img store.Image, pushed digest.Digest, dest transport.Ref, sys *transport.SystemContext, o transport.CopyOptions) error {
	refs, err := st.Referrers(ctx, img.ManifestDigest)
	if err != nil || len(refs) == 0 {
		return err
	}
	if dest.Transport() != transport.TransportDocker {
		return nil // layouts and archives keep the image alone
	}
	var subject ocispec.Descriptor
	if pushed != img.ManifestDigest {
		if subject, err = transport.RemoteManifestDescriptor(ctx, dest, sys, pushed); err != nil {
			return err
		}
	}
	var out []transport.Referrer
	for _, r := range refs {
		s, err := attest.Unpack(r.Manifest, r.Blobs)
		if err != nil {
			return err
		}
		if pushed != img.ManifestDigest {
			for i := range s.Subject {
				s.Subject[i].Digest = map[string]string{pushed.Algorithm().String(): pushed.Encoded()}
			}
			a, err := attest.Pack(s, subject)
			if err != nil {
				return err
			}
			r = store.Referrer{Manifest: a.Manifest, MediaType: a.MediaType, ArtifactType: a.ArtifactType, Blobs: a.Blobs}
		}
		annotations := map[string]string{attest.PredicateTypeAnnotation: s.PredicateType}
		out = append(out, transport.Referrer{Manifest: r.Manifest, MediaType: r.MediaType, ArtifactType: r.ArtifactType, Annotations: annotations, Blobs: r.Blobs})
	}
	if err := transport.PutReferrers(ctx, dest, sys, pushed, out, o.Sign); err != nil {
		return fmt.Errorf("pushing the attestations of %s: %w", img.ID[:12], err)
	}
	return nil
}

// ImageFiles returns the content of each of paths (relative to the root
// filesystem) in a stored image, as its top-most layer that has it says
// (a whiteout hides it); a path no layer has is absent from the map.
func ImageFiles(ctx context.Context, st *store.Store, img store.Image, paths ...string) (map[string][]byte, error) {
	chain, err := st.LayerChain(ctx, img.TopLayer)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, p := range paths {
		want[path.Clean(strings.TrimPrefix(p, "/"))] = true
	}
	out := map[string][]byte{}
	for i := len(chain) - 1; i >= 0 && len(want) > 0; i-- {
		found, hidden, err := layerFiles(ctx, st, chain[i], want)
		if err != nil {
			return nil, err
		}
		for p, b := range found {
			out[p] = b
			delete(want, p)
		}
		for _, p := range hidden {
			delete(want, p)
		}
	}
	return out, nil
}

// layerFiles reads the wanted files of one layer's tar, and the wanted
// paths it deletes (whiteouts, of the file or a parent directory).
func layerFiles(ctx context.Context, st *store.Store, l store.Layer, want map[string]bool) (map[string][]byte, []string, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(st.LayerTar(ctx, l, pw)) }()
	defer pr.Close()
	found := map[string][]byte{}
	var hidden []string
	tr := tar.NewReader(pr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return found, hidden, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading layer %s: %w", l.ID, err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		dir, base := path.Split(name)
		if strings.HasPrefix(base, ".wh.") {
			gone := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			for p := range want {
				if p == gone || strings.HasPrefix(p, gone+"/") || base == ".wh..wh..opq" && strings.HasPrefix(p, path.Clean(dir)+"/") {
					hidden = append(hidden, p)
				}
			}
			continue
		}
		if want[name] && hdr.Typeflag == tar.TypeReg && hdr.Size <= 64<<20 {
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, nil, err
			}
			found[name] = b
		}
	}
}

// ReadPackages lists the packages of a stored image's dpkg and apk
// databases.
func ReadPackages(ctx context.Context, st *store.Store, img store.Image) ([]attest.Package, error) {
	files, err := ImageFiles(ctx, st, img, attest.DpkgStatus, attest.ApkInstalled)
	if err != nil {
		return nil, err
	}
	pkgs := attest.ParseDpkgStatus(files[attest.DpkgStatus])
	return append(pkgs, attest.ParseApkInstalled(files[attest.ApkInstalled])...), nil
}

func digestOf(b []byte) string { return digest.FromBytes(b).String() }
