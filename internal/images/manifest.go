package images

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// PushList writes the stored manifest list name to dest: with
// o.List.Instances, a copy of every instance from where it was recorded,
// then the list; without, the list alone. It returns the digest of the
// list written. An unknown list is store.ErrManifestListUnknown.
func PushList(ctx context.Context, st *store.Store, name string, dest transport.Ref, o PushOptions) (digest.Digest, error) {
	ml, err := st.ManifestList(ctx, name)
	if err != nil {
		return "", err
	}
	if ml, err = refreshLocalInstances(ctx, st, ml); err != nil {
		return "", err
	}
	sys := o.system()
	if o.Copy.Sign == nil {
		if o.Sign.Enabled() && !o.List.Instances {
			return "", fmt.Errorf("signing manifest list %s: the list is signed as it is pushed with its images (--all)", ml.Name)
		}
		if o.Copy.Sign, err = o.Sign.signer(dest, sys); err != nil {
			return "", err
		}
	}
	src := transport.NewListSource(ml.Index, ml.MediaType, instanceSource(st, ml, sys))
	defer src.Close()
	var d digest.Digest
	if o.List.Instances {
		copts := o.Copy
		copts.All = true
		d, err = copyTo(ctx, dest, sys, src, copts, o.Progress)
	} else {
		d, err = putIndexOnly(ctx, dest, sys, ml)
	}
	if err != nil {
		return "", fmt.Errorf("pushing manifest list %s to %s: %w", ml.Name, dest, err)
	}
	if o.List.Remove {
		return d, st.DeleteManifestList(ctx, ml.Name)
	}
	return d, nil
}

// instanceSource opens the source an instance of a stored list was
// recorded with: a local image ID, or a transport reference.
func instanceSource(st *store.Store, ml store.ManifestList, sys *transport.SystemContext) func(context.Context, digest.Digest) (transport.Source, error) {
	return func(ctx context.Context, d digest.Digest) (transport.Source, error) {
		where, ok := ml.Instances[d]
		if !ok {
			return nil, fmt.Errorf("manifest list %s does not say where instance %s is", ml.Name, d)
		}
		if isFullImageID(where) {
			img, err := st.Image(ctx, where)
			if err != nil {
				return nil, fmt.Errorf("instance %s of %s: %w", d, ml.Name, err)
			}
			return st.NewImageSource(ctx, img), nil
		}
		r, err := transport.ParseReference(where)
		if err != nil {
			return nil, err
		}
		return r.NewSource(ctx, sys)
	}
}

func putIndexOnly(ctx context.Context, dest transport.Ref, sys *transport.SystemContext, ml store.ManifestList) (digest.Digest, error) {
	dst, err := dest.NewDestination(ctx, sys)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", dest, err)
	}
	defer dst.Close()
	if err := dst.PutManifest(ctx, ml.Index, ml.MediaType, nil); err != nil {
		return "", err
	}
	if err := dst.Commit(ctx); err != nil {
		return "", err
	}
	return digest.FromBytes(ml.Index), nil
}

// refreshLocalInstances points the entries of local images at the
// manifests those images have now: an image keeps its ID (its config)
// when it is pulled again, but may then have another manifest (layers
// compressed by a registry round trip). Platform and annotations stay.
func refreshLocalInstances(ctx context.Context, st *store.Store, ml store.ManifestList) (store.ManifestList, error) {
	moved := map[digest.Digest]ocispec.Descriptor{}
	for d, where := range ml.Instances {
		if !isFullImageID(where) {
			continue
		}
		img, err := st.Image(ctx, where)
		if err != nil {
			return ml, fmt.Errorf("instance %s of %s: %w", d, ml.Name, err)
		}
		if img.ManifestDigest == d {
			continue
		}
		raw, err := st.ImageManifest(img)
		if err != nil {
			return ml, err
		}
		moved[d] = ocispec.Descriptor{MediaType: img.ManifestType, Digest: img.ManifestDigest, Size: int64(len(raw))}
	}
	if len(moved) == 0 {
		return ml, nil
	}
	raw, err := transport.EditIndex(ml.Index, func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		for i, m := range in {
			if n, ok := moved[m.Digest]; ok {
				in[i].MediaType, in[i].Digest, in[i].Size = n.MediaType, n.Digest, n.Size
			}
		}
		return in, nil
	})
	if err != nil {
		return ml, err
	}
	ml.Index = raw
	for old, n := range moved {
		ml.Instances[n.Digest] = ml.Instances[old]
		delete(ml.Instances, old)
	}
	return ml, nil
}

// AddOptions say what AddToList adds and how the entries read.
type AddOptions struct {
	// All adds every image of a list ref names, not the one for Platform.
	All bool
	// Platform picks the image of a list (OS, Architecture, Variant; zero
	// fields are this machine's) and overrides those fields of each entry
	// it sets, with OSVersion and OSFeatures.
	Platform ocispec.Platform
	// Annotations are set on each entry.
	Annotations map[string]string
	// System reaches ref's source; nil means the defaults.
	System *transport.SystemContext
}

// AddToList adds the image ref names (a stored image, or TRANSPORT:REF;
// with All, the images of the list it names) to the stored list, and
// returns the entries written. An unknown list is
// store.ErrManifestListUnknown.
func AddToList(ctx context.Context, st *store.Store, list, ref string, o AddOptions) ([]ocispec.Descriptor, error) {
	if _, err := st.ManifestList(ctx, list); err != nil {
		return nil, err
	}
	descs, where, err := listEntries(ctx, st, ref, o)
	if err != nil {
		return nil, err
	}
	for i := range descs {
		descs[i] = o.override(descs[i])
	}
	err = st.UpdateManifestList(ctx, list, func(ml *store.ManifestList) error {
		raw, err := transport.EditIndex(ml.Index, func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			return transport.AddInstances(in, descs...), nil
		})
		if err != nil {
			return err
		}
		ml.Index = raw
		for _, d := range descs {
			ml.Instances[d.Digest] = where(d.Digest)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("adding %s to manifest list %s: %w", ref, list, err)
	}
	return descs, nil
}

// listEntries reads the entries for ref and says where each will be
// read from on push: a local image by ID, a registry image by digest,
// anything else by the reference given.
func listEntries(ctx context.Context, st *store.Store, ref string, o AddOptions) ([]ocispec.Descriptor, func(digest.Digest) string, error) {
	p := transport.Platform{OS: o.Platform.OS, Architecture: o.Platform.Architecture, Variant: o.Platform.Variant}
	if !IsTransportRef(ref) && !strings.HasPrefix(ref, "docker://") {
		if img, err := st.LookupImage(ctx, ref); err == nil {
			descs, err := transport.ListInstances(ctx, st.NewImageSource(ctx, img), p, false)
			return descs, func(digest.Digest) string { return img.ID }, err
		}
	}
	r, err := transport.ParseReference(ref)
	if err != nil {
		return nil, nil, err
	}
	sys := o.System
	if sys == nil {
		sys = &transport.SystemContext{}
	}
	src, err := r.NewSource(ctx, sys)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	defer src.Close()
	descs, err := transport.ListInstances(ctx, src, p, o.All)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	where := func(digest.Digest) string { return r.String() }
	if r.Transport() == transport.TransportDocker {
		repo, err := transport.RepositoryName(r, sys)
		if err != nil {
			return nil, nil, err
		}
		where = func(d digest.Digest) string { return "docker://" + repo + "@" + d.String() }
	}
	return descs, where, nil
}

// override applies the platform fields and annotations of o to an entry.
func (o AddOptions) override(d ocispec.Descriptor) ocispec.Descriptor {
	p := ocispec.Platform{}
	if d.Platform != nil {
		p = *d.Platform
	}
	for _, f := range []struct {
		to   *string
		from string
	}{{&p.OS, o.Platform.OS}, {&p.Architecture, o.Platform.Architecture}, {&p.Variant, o.Platform.Variant}, {&p.OSVersion, o.Platform.OSVersion}} {
		if f.from != "" {
			*f.to = f.from
		}
	}
	if len(o.Platform.OSFeatures) > 0 {
		p.OSFeatures = o.Platform.OSFeatures
	}
	d.Platform = &p
	if len(o.Annotations) > 0 {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		for k, v := range o.Annotations {
			d.Annotations[k] = v
		}
	}
	return d
}

// Annotate changes the entry of the stored list whose image is d: the
// platform fields and annotations o sets (manifest annotate). An image
// the list does not have is ErrNotInList.
func Annotate(ctx context.Context, st *store.Store, list string, d digest.Digest, o AddOptions) error {
	err := st.UpdateManifestList(ctx, list, func(ml *store.ManifestList) error {
		found := false
		raw, err := transport.EditIndex(ml.Index, func(in []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			for i := range in {
				if in[i].Digest == d {
					in[i], found = o.override(in[i]), true
				}
			}
			return in, nil
		})
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%s is not in the list: %w", d, ErrNotInList)
		}
		ml.Index = raw
		return nil
	})
	if err != nil {
		return fmt.Errorf("annotating %s in manifest list %s: %w", d, list, err)
	}
	return nil
}

// ErrNotInList reports an image a manifest list does not list.
var ErrNotInList = errors.New("image not in the manifest list")

// ListID is the ID Buildah shows for a stored manifest list: the hex
// digest of its index as it is now.
func ListID(ml store.ManifestList) string { return digest.FromBytes(ml.Index).Encoded() }

// StoredLists are the manifest lists in the store, by name; one removed
// while they are read is left out.
func StoredLists(ctx context.Context, st *store.Store) ([]store.ManifestList, error) {
	names, err := st.ManifestListNames(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.ManifestList
	for _, n := range names {
		ml, err := st.ManifestList(ctx, n)
		if errors.Is(err, store.ErrManifestListUnknown) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ml)
	}
	return out, nil
}

// ListTagged reports whether another stored list than ml has its index:
// ml tagged under another name (see Tag).
func ListTagged(ctx context.Context, st *store.Store, ml store.ManifestList) (bool, error) {
	lists, err := StoredLists(ctx, st)
	if err != nil {
		return false, err
	}
	id := ListID(ml)
	for _, other := range lists {
		if other.Name != ml.Name && ListID(other) == id {
			return true, nil
		}
	}
	return false, nil
}
