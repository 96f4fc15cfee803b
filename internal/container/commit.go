package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// CommitOptions shape the image a commit makes.
type CommitOptions struct {
	// Names are full image names (see image.NormalizeName); may be empty.
	Names  []string
	Format image.Format
	// Timestamp, when set, is the image's created time and clamps file
	// times in the new layer, for reproducible images.
	Timestamp *time.Time
	// CreatedBy describes the step in the new history entry.
	CreatedBy string
	// EmptyLayer records the step in history without adding a layer.
	EmptyLayer bool
	// Squash makes the image one layer holding the whole root filesystem,
	// with one history entry; the container itself is unchanged.
	Squash bool
	// UnsetEnv names environment variables the image's config goes
	// without (the container keeps them).
	UnsetEnv []string
	// OmitHistory writes the image with an empty history.
	OmitHistory bool
	// Again lets a commit of a container that changed nothing since its
	// last commit make that commit's image again (its layers, its last
	// history entry replaced by this one), as Buildah, which commits a
	// container's whole change each time, does; otherwise a commit always
	// adds a layer.
	Again bool
	// Hold keeps the image from prune until the caller releases it
	// (store.ReleaseImages) or exits: a build's step image, unnamed until
	// the build caches or tags it.
	Hold   bool
	Logger *slog.Logger
}

// finish applies what the options change in the config of the image
// only: variables unset, history omitted, and in Docker format the
// container and parent image it came from (.Docker.Container,
// .Docker.Parent, none for a squashed image), as Buildah records them;
// but neither with a fixed Timestamp: a reproducible image cannot name
// a container ID, new every time, nor a parent, which depends on which
// steps a build found in its cache.
func (c *Container) finish(cfg *image.Config, o CommitOptions) {
	if len(o.UnsetEnv) > 0 {
		env := cfg.Config.Env[:0:0]
		for _, kv := range cfg.Config.Env {
			name, _, _ := strings.Cut(kv, "=")
			if !slices.Contains(o.UnsetEnv, name) {
				env = append(env, kv)
			}
		}
		cfg.Config.Env = env
	}
	if o.OmitHistory {
		cfg.History = nil
	}
	cfg.Container, cfg.Parent = "", "" // the base image's, inherited
	if o.Format == image.FormatDocker {
		// Buildah's container_config is the image's config (Docker's was
		// the config of the container that made the last layer); scripts
		// read .Docker.ContainerConfig.Healthcheck and the like.
		cc := cfg.Config
		cfg.ContainerConfig = &cc
	}
	if o.Format == image.FormatDocker && o.Timestamp == nil {
		cfg.Container = c.rec.ID
		if c.State.FromImageID != "" && !o.Squash {
			cfg.Parent = "sha256:" + c.State.FromImageID
		}
	}
}

// Commit makes an image of the container: its writes become a new layer
// (promoted, not copied), its config the image's config. The container
// goes on working afterwards, mounted or not, on top of the new layer.
func (c *Container) Commit(ctx context.Context, o CommitOptions) (store.Image, error) {
	if o.Logger != nil && o.Format == image.FormatOCI {
		for _, w := range c.State.Config.OCIWarnings() {
			o.Logger.Warn(w)
		}
	}
	if o.Squash {
		return c.squash(ctx, o)
	}
	created := time.Now().UTC()
	if o.Timestamp != nil {
		created = o.Timestamp.UTC()
	}
	top := c.rec.Layer
	cfg := c.State.Config.Clone()
	hist := image.History{Created: &created, CreatedBy: o.CreatedBy, Comment: c.State.HistoryComment, EmptyLayer: o.EmptyLayer}
	if hist.CreatedBy == "" {
		hist.CreatedBy = c.State.ImageCreatedBy
	}
	if hist.CreatedBy == "" {
		hist.CreatedBy = "/bin/sh" // Buildah's, when nothing says how the layer was made
	}
	if !o.EmptyLayer {
		again := o.Again && c.repeatable(cfg)
		l, err := c.st.CommitLayer(ctx, c.rec.ID, store.CommitOptions{MTimeBound: o.Timestamp, SkipEmpty: again})
		switch {
		case errors.Is(err, store.ErrNoChanges):
			// The last commit's layer, with this commit's history entry.
			cfg.History = cfg.History[:len(cfg.History)-1]
		case err != nil:
			return store.Image{}, fmt.Errorf("committing container %s: %w", c.rec.Name, err)
		default:
			top = l.ID
			c.rec.Layer = l.ID
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		}
	}
	cfg.RootFS.Type = "layers"
	cfg.History = append(append(cfg.History, c.State.PrependedHistory...), hist)
	cfg.Created = &created
	c.State.LastCommit = nil
	if !o.EmptyLayer {
		c.State.LastCommit = &CommitMark{Layer: top, History: len(cfg.History)}
	}
	return c.writeImage(ctx, cfg, top, o)
}

// repeatable says whether the container is where its last commit left
// it: on that commit's layer, with no history added since.
func (c *Container) repeatable(cfg *image.Config) bool {
	m := c.State.LastCommit
	return m != nil && m.Layer == c.rec.Layer && m.History > 0 && len(cfg.History) == m.History && len(c.State.PrependedHistory) == 0
}

// writeImage records config cfg on layer top as an image in format
// o.Format; the container keeps cfg's layers and history, not what only
// the image gets (finish).
func (c *Container) writeImage(ctx context.Context, cfg *image.Config, top string, o CommitOptions) (store.Image, error) {
	c.State.Config.RootFS = cfg.RootFS
	c.State.Config.History = cfg.History
	c.State.PrependedHistory = nil
	out := cfg.Clone()
	c.finish(out, o)
	img, err := storeImage(ctx, c.st, out, top, o.Format, imageExtras{annotations: c.State.ImageAnnotations, names: o.Names, hold: o.Hold})
	if err != nil {
		return store.Image{}, err
	}
	return img, c.Save(ctx)
}

// imageExtras are what storeImage records beside config and layers.
type imageExtras struct {
	annotations map[string]string // the manifest's
	names       []string
	hold        bool // see CommitOptions.Hold
}

// storeImage writes config cfg and a manifest for the chain ending at top
// in format f, and records the image with x.
func storeImage(ctx context.Context, st *store.Store, cfg *image.Config, top string, f image.Format, x imageExtras) (store.Image, error) {
	rawCfg, err := cfg.Marshal(f)
	if err != nil {
		return store.Image{}, err
	}
	layers, err := st.LayerDescriptors(ctx, top, f)
	if err != nil {
		return store.Image{}, err
	}
	manifest, err := image.NewManifest(f, image.FromBytes(f.ConfigMediaType(), rawCfg), layers, x.annotations)
	if err != nil {
		return store.Image{}, err
	}
	return st.CreateImage(ctx, store.NewImage{
		TopLayer: top, Config: rawCfg, Manifest: manifest, MediaType: f.ManifestMediaType(),
		Names: x.names, Created: *cfg.Created, Hold: x.hold,
	})
}

// ReformatOptions say how Reformat rewrites an image.
type ReformatOptions struct {
	Format      image.Format
	Annotations map[string]string // added to the manifest's
	Names       []string
	OmitHistory bool // the config's history is left empty
}

// Reformat records img again as o says (its config and manifest
// rewritten, its layers shared) and returns the new image; an image
// already in o.Format is only named when there is nothing to change.
func Reformat(ctx context.Context, st *store.Store, img store.Image, o ReformatOptions) (store.Image, error) {
	f, annotations, names := o.Format, o.Annotations, o.Names
	raw, err := st.ImageConfig(img)
	if err != nil {
		return store.Image{}, err
	}
	cfg, err := image.ParseConfig(raw)
	if err != nil {
		return store.Image{}, err
	}
	rawManifest, err := st.ImageManifest(img)
	if err != nil {
		return store.Image{}, err
	}
	m, err := image.ParseManifest(rawManifest)
	if err != nil {
		return store.Image{}, err
	}
	if m.MediaType == f.ManifestMediaType() && len(annotations) == 0 && !(o.OmitHistory && len(cfg.History) > 0) {
		return img, st.AddNames(ctx, img.ID, names)
	}
	if cfg.Created == nil {
		cfg.Created = &img.Created
	}
	if o.OmitHistory {
		cfg.History = nil
	}
	merged := map[string]string{}
	for k, v := range m.Annotations {
		merged[k] = v
	}
	for k, v := range annotations {
		merged[k] = v
	}
	if len(merged) == 0 {
		merged = nil
	}
	return storeImage(ctx, st, cfg, img.TopLayer, f, imageExtras{annotations: merged, names: names})
}
