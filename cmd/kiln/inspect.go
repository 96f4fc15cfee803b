package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

type inspectOptions struct {
	Type   string
	Format string
}

func init() { register(newInspectCommand) }

func newInspectCommand() *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [options] CONTAINER|IMAGE",
		Short: "Describe a working container or an image",
		Args:  exactArgs(1, "a container or image name or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			v, err := inspectTarget(ctx, st, o.Type, args[0])
			if err != nil {
				return err
			}
			format := o.Format
			if format == "" {
				format = "json"
			}
			return render(cmd.OutOrStdout(), format, []any{v}, true)
		},
	}
	cmd.Flags().StringVarP(&o.Type, "type", "t", "container", "what to inspect: container or image")
	cmd.Flags().StringVarP(&o.Format, "format", "f", "", "format the output with a Go template")
	return optionsFirst(cmd)
}

// imageInspect is Buildah's shape for an image: the same fields as a
// container, from the image's point of view.
type imageInspect struct {
	Type             string            `json:"Type"`
	FromImage        string            `json:"FromImage"`
	FromImageID      string            `json:"FromImageID"`
	FromImageDigest  string            `json:"FromImageDigest"`
	Config           string            `json:"Config"`
	Manifest         string            `json:"Manifest"`
	OCIv1            any               `json:"OCIv1"`
	Docker           *image.Config     `json:"Docker"`
	ImageAnnotations map[string]string `json:"ImageAnnotations,omitempty"`
	History          []image.History   `json:"History"`
}

func inspectTarget(ctx context.Context, st *store.Store, typ, ref string) (any, error) {
	switch typ {
	case "container", "":
		c, err := container.Open(ctx, st, ref)
		if err == nil {
			return c.Inspect(), nil
		}
		if !errors.Is(err, store.ErrContainerUnknown) {
			return nil, err
		}
		if typ == "container" {
			if _, ierr := st.LookupImage(ctx, ref); ierr == nil {
				return inspectImage(ctx, st, ref)
			}
			return nil, err
		}
		return inspectImage(ctx, st, ref)
	case "image":
		return inspectImage(ctx, st, ref)
	}
	return nil, fmt.Errorf("unknown --type %q: use container or image", typ)
}

func inspectImage(ctx context.Context, st *store.Store, ref string) (any, error) {
	img, err := st.LookupImage(ctx, ref)
	if err != nil {
		return nil, err
	}
	rawCfg, err := st.ImageConfig(img)
	if err != nil {
		return nil, err
	}
	rawMan, err := st.ImageManifest(img)
	if err != nil {
		return nil, err
	}
	cfg, err := image.ParseConfig(rawCfg)
	if err != nil {
		return nil, err
	}
	name := ref
	if len(img.Names) > 0 {
		name = img.Names[0]
	}
	m, err := image.ParseManifest(rawMan)
	if err != nil {
		return nil, err
	}
	return imageInspect{
		Type: "kiln 0.1", FromImage: name, FromImageID: img.ID, FromImageDigest: string(img.ManifestDigest),
		Config: string(rawCfg), Manifest: string(rawMan), OCIv1: cfg.OCI(), Docker: cfg.Docker(), History: cfg.History,
		ImageAnnotations: m.Annotations,
	}, nil
}
