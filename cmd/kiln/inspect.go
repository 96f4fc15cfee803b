package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
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
			if raw, ok := v.(listJSON); ok {
				// Buildah prints a list as manifest inspect does,
				// whatever --format says.
				return printIndented(cmd.OutOrStdout(), raw, args[0])
			}
			format := o.Format
			if format == "" {
				format = "json"
			}
			return render(cmd.OutOrStdout(), format, []any{v}, true)
		},
	}
	cmd.Flags().StringVarP(&o.Type, "type", "t", "container", "what to inspect: container, image or manifest")
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

// listJSON is a manifest list to print as manifest inspect prints it.
type listJSON []byte

// inspectTarget finds what inspect describes, as Buildah looks: a
// container, else an image, else a manifest list (in Buildah, an image
// too): the list's stored image for this platform, or, when it has none,
// the list itself. --type image takes an image or a list's image only;
// --type manifest a list only.
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
		v, ierr := inspectImageOrList(ctx, st, ref, true)
		if typ == "container" && (errors.Is(ierr, store.ErrImageUnknown) || errors.Is(ierr, store.ErrAmbiguous)) {
			return nil, err
		}
		return v, ierr
	case "image":
		return inspectImageOrList(ctx, st, ref, false)
	case "manifest":
		ml, err := images.LookupList(ctx, st, ref)
		if err != nil {
			return nil, listNotFound(ref, err)
		}
		return listJSON(ml.Index), nil
	}
	return nil, fmt.Errorf("unknown --type %q: use container, image or manifest", typ)
}

// inspectImageOrList inspects the image ref names or, when ref names a
// manifest list, the list's image for this platform; with orList, a
// list without one is returned as listJSON.
func inspectImageOrList(ctx context.Context, st *store.Store, ref string, orList bool) (any, error) {
	_, err := st.LookupImage(ctx, ref)
	if err == nil {
		return inspectImage(ctx, st, ref)
	}
	if !errors.Is(err, store.ErrImageUnknown) {
		return nil, err
	}
	ml, lerr := images.LookupList(ctx, st, ref)
	if errors.Is(lerr, store.ErrManifestListUnknown) {
		return nil, err
	}
	if lerr != nil {
		return nil, lerr
	}
	img, ierr := images.ListImage(ctx, st, ml, transport.Platform{})
	if ierr == nil {
		return inspectImage(ctx, st, img.ID)
	}
	if orList && errors.Is(ierr, store.ErrImageUnknown) {
		return listJSON(ml.Index), nil
	}
	return nil, fmt.Errorf("importing settings: %w", ierr)
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
