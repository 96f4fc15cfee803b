package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/kiln-build/kiln/internal/digestio"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImageInspect is what `skopeo inspect` prints, with its JSON field names.
type ImageInspect struct {
	Name          string            `json:",omitempty"`
	Tag           string            `json:",omitempty"`
	Digest        digest.Digest     `json:"Digest"`
	RepoTags      []string          `json:"RepoTags"`
	Created       *time.Time        `json:"Created"`
	DockerVersion string            `json:"DockerVersion"`
	Labels        map[string]string `json:"Labels"`
	Architecture  string            `json:"Architecture"`
	Variant       string            `json:"Variant,omitempty"`
	Os            string            `json:"Os"`
	Layers        []string          `json:"Layers"`
	LayersData    []LayerData       `json:"LayersData"`
	Env           []string          `json:"Env"`
}

// LayerData describes one layer in ImageInspect.
type LayerData struct {
	MIMEType    string            `json:"MIMEType"`
	Digest      digest.Digest     `json:"Digest"`
	Size        int64             `json:"Size"`
	Annotations map[string]string `json:"Annotations"`
}

// InspectOptions tune Inspect.
type InspectOptions struct {
	// Name and RepoTags are copied into the result (the caller knows them).
	Name     string
	RepoTags []string
	// Platform selects the image of an index; zero means this machine.
	Platform Platform
}

// Image is an image's resolved manifest and config, as Inspect reads them.
type Image struct {
	// Digest is the digest of the top-level manifest (or index).
	Digest        digest.Digest
	Manifest      ocispec.Manifest
	RawManifest   []byte
	MediaType     string
	Config        ocispec.Image
	RawConfig     []byte
	DockerVersion string
}

// ReadImage reads the manifest (picking the platform of an index) and the
// config of src, verifying both.
func ReadImage(ctx context.Context, src Source, p Platform) (*Image, error) {
	raw, mt, err := src.Manifest(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := digestio.VerifyDocument(raw, ""); err != nil {
		return nil, err
	}
	img := &Image{Digest: digest.FromBytes(raw)}
	// The config is a blob: the copy engine's retry (defaults) fetches it.
	c := &copier{src: src, log: slog.New(slog.DiscardHandler)}
	if image.IsIndex(mt) {
		idx, err := parseIndex(raw)
		if err != nil {
			return nil, err
		}
		o := CopyOptions{Platform: p}
		desc, err := MatchPlatform(idx, o.platform())
		if err != nil {
			return nil, err
		}
		if raw, mt, err = c.instance(ctx, desc); err != nil {
			return nil, err
		}
	}
	img.RawManifest, img.MediaType = raw, mt
	if err := json.Unmarshal(raw, &img.Manifest); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	cfg := img.Manifest.Config
	err = c.retry(ctx, "reading config "+cfg.Digest.String(), func() error {
		rc, _, err := src.Blob(ctx, cfg.Digest)
		if err != nil {
			return err
		}
		defer rc.Close()
		img.RawConfig, err = digestio.ReadVerified(rc, cfg.Digest, cfg.Size)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if err := json.Unmarshal(img.RawConfig, &img.Config); err != nil {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	var dv struct {
		DockerVersion string `json:"docker_version"`
	}
	_ = json.Unmarshal(img.RawConfig, &dv)
	img.DockerVersion = dv.DockerVersion
	return img, nil
}

// Inspect reads src like `skopeo inspect` does, without pulling layers.
func Inspect(ctx context.Context, src Source, opts InspectOptions) (*ImageInspect, error) {
	img, err := ReadImage(ctx, src, opts.Platform)
	if err != nil {
		return nil, fmt.Errorf("inspecting %s: %w", opts.Name, err)
	}
	out := &ImageInspect{
		Name:          opts.Name,
		Digest:        img.Digest,
		RepoTags:      opts.RepoTags,
		Created:       img.Config.Created,
		DockerVersion: img.DockerVersion,
		Labels:        img.Config.Config.Labels,
		Architecture:  img.Config.Architecture,
		Variant:       img.Config.Variant,
		Os:            img.Config.OS,
		Env:           img.Config.Config.Env,
		Layers:        []string{},
		LayersData:    []LayerData{},
	}
	if out.RepoTags == nil {
		out.RepoTags = []string{}
	}
	for _, l := range img.Manifest.Layers {
		out.Layers = append(out.Layers, l.Digest.String())
		out.LayersData = append(out.LayersData, LayerData{MIMEType: l.MediaType, Digest: l.Digest, Size: l.Size, Annotations: l.Annotations})
	}
	return out, nil
}
