package container

import (
	"context"
	"fmt"
	"log/slog"
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
	Logger *slog.Logger
}

// Commit makes an image of the container: its writes become a new layer
// (promoted, not copied), its config the image's config. The container
// goes on working afterwards, mounted or not, on top of the new layer.
func (c *Container) Commit(ctx context.Context, o CommitOptions) (store.Image, error) {
	if o.Logger != nil && o.Format == image.FormatOCI {
		if f := c.State.Config.DockerOnlyFields(); len(f) > 0 {
			o.Logger.Warn(fmt.Sprintf("%v: not supported for OCI image format, will be ignored; use --format docker to keep them", f))
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
	if !o.EmptyLayer {
		l, err := c.st.CommitLayer(ctx, c.rec.ID, store.CommitOptions{MTimeBound: o.Timestamp})
		if err != nil {
			return store.Image{}, fmt.Errorf("committing container %s: %w", c.rec.Name, err)
		}
		top = l.ID
		c.rec.Layer = l.ID
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
	}
	cfg.RootFS.Type = "layers"
	cfg.History = append(cfg.History, hist)
	cfg.Created = &created
	return c.writeImage(ctx, cfg, top, o)
}

// writeImage records config cfg on layer top as an image in format o.Format.
func (c *Container) writeImage(ctx context.Context, cfg *image.Config, top string, o CommitOptions) (store.Image, error) {
	img, err := storeImage(ctx, c.st, cfg, top, o.Format, c.State.ImageAnnotations, o.Names)
	if err != nil {
		return store.Image{}, err
	}
	c.State.Config.RootFS = cfg.RootFS
	c.State.Config.History = cfg.History
	return img, c.Save(ctx)
}

// storeImage writes config cfg and a manifest for the chain ending at top
// in format f, and records the image under names.
func storeImage(ctx context.Context, st *store.Store, cfg *image.Config, top string, f image.Format, annotations map[string]string, names []string) (store.Image, error) {
	rawCfg, err := cfg.Marshal(f)
	if err != nil {
		return store.Image{}, err
	}
	layers, err := st.LayerDescriptors(ctx, top, f)
	if err != nil {
		return store.Image{}, err
	}
	manifest, err := image.NewManifest(f, image.FromBytes(f.ConfigMediaType(), rawCfg), layers, annotations)
	if err != nil {
		return store.Image{}, err
	}
	return st.CreateImage(ctx, store.NewImage{
		TopLayer: top, Config: rawCfg, Manifest: manifest, MediaType: f.ManifestMediaType(),
		Names: names, Created: *cfg.Created,
	})
}

// Reformat records img again in format f with the manifest annotations
// added (its config and manifest rewritten, its layers shared) under
// names, and returns the new image; an image already in format f is only
// named when there is nothing to add.
func Reformat(ctx context.Context, st *store.Store, img store.Image, f image.Format, annotations map[string]string, names []string) (store.Image, error) {
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
	if m.MediaType == f.ManifestMediaType() && len(annotations) == 0 {
		return img, st.AddNames(ctx, img.ID, names)
	}
	if cfg.Created == nil {
		cfg.Created = &img.Created
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
	return storeImage(ctx, st, cfg, img.TopLayer, f, merged, names)
}
