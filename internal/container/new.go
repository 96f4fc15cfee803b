package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/store"
)

// NewOptions describe a new working container.
type NewOptions struct {
	// Image is "scratch" or a local image name, ID or ID prefix.
	Image string
	// Spec is the reference the image was asked for by, as given (a short
	// name, a transport reference, an ID); it picks the image name the
	// container records and its default name as Buildah does. "" is Image.
	Spec string
	// Name is the container's name; "" picks Buildah's default.
	Name string
	// Suffix replaces "working-container" in the default name.
	Suffix string
	// Temporary marks the container as this process's (a build step's):
	// if the process dies, RemoveAbandoned removes it.
	Temporary bool
	// BaseAnnotations records the base image's manifest digest and full
	// name as the image annotations org.opencontainers.image.base.digest
	// and .name, which commits in OCI format then carry, as Buildah's
	// from records them (the name only when it has a registry).
	BaseAnnotations bool
	// SecurityOpts are recorded for later runs (State.SecurityOpts).
	SecurityOpts []string
	// CapAdd, CapDrop, Volumes, Isolation, Network, RunSettings and
	// NoHTTPProxy are recorded for later runs (State's fields of those
	// names).
	CapAdd, CapDrop, Volumes []string
	Isolation, Network       string
	RunSettings              *run.Settings
	NoHTTPProxy              bool
	// Platform is a scratch container's platform; empty fields are this
	// machine's. A container from an image has the image's.
	Platform ocispec.Platform
}

// New makes a working container from a local image (or scratch).
func New(ctx context.Context, st *store.Store, o NewOptions) (*Container, error) {
	state := State{
		Type: stateType, SecurityOpts: o.SecurityOpts, CapAdd: o.CapAdd, CapDrop: o.CapDrop, Volumes: o.Volumes,
		Isolation: o.Isolation, Network: o.Network, RunSettings: o.RunSettings, NoHTTPProxy: o.NoHTTPProxy,
	}
	var img store.Image
	if o.Image == "scratch" || o.Image == "" {
		state.Config = &image.Config{OS: "linux", Architecture: runtime.GOARCH, RootFS: image.RootFS{Type: "layers"}}
		if o.Platform.OS != "" {
			state.Config.OS = o.Platform.OS
		}
		if o.Platform.Architecture != "" {
			state.Config.Architecture, state.Config.Variant = o.Platform.Architecture, o.Platform.Variant
		}
	} else {
		var err error
		if img, err = st.LookupImage(ctx, o.Image); err != nil {
			return nil, err
		}
		raw, err := st.ImageConfig(img)
		if err != nil {
			return nil, err
		}
		if state.Config, err = image.ParseConfig(raw); err != nil {
			return nil, fmt.Errorf("image %s: %w", o.Image, err)
		}
		spec := o.Spec
		if spec == "" {
			spec = o.Image
		}
		state.FromImage = baseName(spec, img.Names)
		state.FromImageID = img.ID
		state.FromImageDigest = string(img.ManifestDigest)
		if o.BaseAnnotations && state.FromImageDigest != "" {
			state.ImageAnnotations = map[string]string{ocispec.AnnotationBaseImageDigest: state.FromImageDigest}
			if r, err := image.ParseReference(state.FromImage); err == nil && r.Domain != "" {
				state.ImageAnnotations[ocispec.AnnotationBaseImageName] = state.FromImage
			}
		}
	}
	name := o.Name
	if name == "" {
		var err error
		if name, err = freeName(ctx, st, defaultName(state.FromImage, o.Suffix)); err != nil {
			return nil, err
		}
	}
	raw, err := json.Marshal(state)
	if err != nil {
		return nil, err
	}
	rec, err := st.CreateContainer(ctx, name, img.ID, img.TopLayer, raw)
	if err != nil {
		return nil, err
	}
	if o.Temporary {
		if err := st.MarkTemporary(ctx, rec.ID); err != nil {
			return nil, errors.Join(err, st.DeleteContainer(context.WithoutCancel(ctx), rec.ID))
		}
	}
	c, err := fromRecord(ctx, st, rec)
	if err != nil {
		return nil, err
	}
	return c, c.Save(ctx)
}

// freeName returns base, or base-1, base-2, … whichever is free first.
func freeName(ctx context.Context, st *store.Store, base string) (string, error) {
	name := base
	for i := 1; ; i++ {
		taken, err := st.ContainerNameTaken(ctx, name)
		if err != nil || !taken {
			return name, err
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}
