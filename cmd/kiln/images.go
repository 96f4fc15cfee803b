package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
)

type imagesOptions struct {
	All, Quiet, NoHeading, Digests, JSON, NoTrunc, History bool
	Format                                                 string
	Filters                                                []string
}

func init() { register(newImagesCommand) }

func newImagesCommand() *cobra.Command {
	var o imagesOptions
	cmd := &cobra.Command{
		Use:   "images [options] [IMAGE]",
		Short: "List images in local storage",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImages(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.All, "all", "a", false, "show all images, including intermediate ones")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print only image IDs")
	f.BoolVarP(&o.NoHeading, "noheading", "n", false, "do not print column headings")
	f.BoolVar(&o.Digests, "digests", false, "show image digests")
	f.BoolVar(&o.JSON, "json", false, "output in JSON format")
	f.BoolVar(&o.NoTrunc, "no-trunc", false, "do not truncate output")
	f.StringVar(&o.Format, "format", "", "pretty-print images using a Go template")
	f.StringArrayVarP(&o.Filters, "filter", "f", nil, "filter output (dangling=, label=, reference=, before=, since=, id=)")
	f.BoolVar(&o.History, "history", false, "show the names images had before (refused: kiln keeps no name history)")
	return optionsFirst(cmd)
}

// imageRow is one line of `images`: field names as Buildah's templates use.
type imageRow struct {
	ID           string    `json:"id"`
	Name         string    `json:"-"`
	Tag          string    `json:"-"`
	Names        []string  `json:"names"`
	Digest       string    `json:"digest"`
	CreatedAt    string    `json:"createdat"`
	Size         string    `json:"size"`
	Created      int64     `json:"created"`
	CreatedAtRaw time.Time `json:"createdatraw"`
	ReadOnly     bool      `json:"readonly"`
	// History is Buildah's names history, which kiln does not keep.
	History []string `json:"history"`
	// Platform is OS/ARCH[/VARIANT] from the image's config, filled only
	// when --format names it (reading every config costs).
	Platform string `json:"-"`
	labels   map[string]string
}

func runImages(cmd *cobra.Command, o imagesOptions, args []string) error {
	ctx := cmd.Context()
	if o.History {
		return usageErrorf("--history: kiln keeps no history of the names an image had")
	}
	if o.Quiet && o.Format != "" {
		return errors.New("quiet and format are mutually exclusive")
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	imgs, rows, err := listRows(ctx, st, o, args)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	switch {
	case o.JSON:
		if rows == nil {
			rows = []imageRow{}
		}
		for i := range rows {
			rows[i].ID = trunc(rows[i].ID, o.NoTrunc) // Buildah's JSON too
		}
		return printJSON(out, rows)
	case o.Quiet:
		bw := bufio.NewWriter(out) // one write(2), not one per image
		seen := map[string]bool{}
		for _, r := range rows {
			if !seen[r.ID] {
				fmt.Fprintln(bw, trunc(r.ID, o.NoTrunc))
				seen[r.ID] = true
			}
		}
		return bw.Flush()
	}
	format := o.Format
	if format == "" {
		format = "{{.Name}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedAt}}\t{{.Size}}"
		if o.Digests {
			format = "{{.Name}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedAt}}\t{{.Size}}"
		}
		if !o.NoHeading {
			format = "table " + format
		}
	}
	items := make([]any, 0, len(rows)+1)
	if strings.HasPrefix(format, "table ") {
		format = strings.TrimPrefix(format, "table ")
		h := imageRow{Name: "REPOSITORY", Tag: "TAG", ID: "IMAGE ID", CreatedAt: "CREATED", Size: "SIZE", Digest: "DIGEST", Platform: "PLATFORM"}
		items = append(items, h)
	}
	platforms := map[string]string{}
	for _, img := range imgs {
		if !strings.Contains(format, ".Platform") {
			break
		}
		p, err := images.ImagePlatform(st, img)
		if err != nil {
			return err
		}
		platforms[img.ID] = platformString(p)
	}
	for _, r := range rows {
		r.Platform = platforms[r.ID]
		r.ID = trunc(r.ID, o.NoTrunc)
		items = append(items, r)
	}
	return render(out, format, items, false)
}

// trunc is an image ID as Buildah lists it: its first 12 digits, or
// "sha256:" and all of them with --no-trunc.
func trunc(id string, noTrunc bool) string {
	if noTrunc {
		return "sha256:" + id
	}
	if len(id) <= 12 {
		return id
	}
	return id[:12]
}

// listRows are the images to list, and their rows: with no filter and no
// name given, the manifest lists' rows follow, as Buildah lists them
// among its images (ID and digest the index's digest).
func listRows(ctx context.Context, st *store.Store, o imagesOptions, args []string) ([]store.Image, []imageRow, error) {
	lo := images.ListOptions{All: o.All}
	var err error
	if lo.Filter, err = images.ParseFilter(ctx, st, o.Filters, images.FilterOptions{Keys: images.ListKeys}); err != nil {
		return nil, nil, err
	}
	if len(args) == 1 {
		img, err := st.LookupImage(ctx, args[0])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", args[0], notKnown(err))
		}
		lo.Filter = lo.Filter.Only(img)
	}
	imgs, err := images.List(ctx, st, lo)
	if err != nil {
		return nil, nil, err
	}
	var rows []imageRow
	for _, img := range imgs {
		rows = append(rows, imageRows(img, o.JSON)...)
	}
	if len(args) > 0 || len(o.Filters) > 0 {
		return imgs, rows, nil
	}
	lists, err := images.StoredLists(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	for _, ml := range lists {
		id := images.ListID(ml)
		rows = append(rows, imageRows(store.Image{ID: id, Names: []string{ml.Name}, ManifestDigest: digest.NewDigestFromEncoded(digest.SHA256, id), Created: ml.Created, Size: int64(len(ml.Index))}, o.JSON)...)
	}
	return imgs, rows, nil
}

// imageRows gives one row per name (one "<none>" row for a nameless image).
func imageRows(img store.Image, json bool) []imageRow {
	base := imageRow{
		ID: img.ID, Names: img.Names, Digest: string(img.ManifestDigest),
		CreatedAt: humanTime(img.Created), Size: store.HumanBytes(img.Size),
		Created: img.Created.Unix(), CreatedAtRaw: img.Created,
	}
	if json || len(img.Names) == 0 {
		base.Name, base.Tag = "<none>", "<none>"
		if base.Names == nil {
			base.Names = []string{}
		}
		return []imageRow{base}
	}
	var out []imageRow
	for _, n := range img.Names {
		r := base
		ref, err := image.ParseReference(n)
		if err == nil {
			r.Name, r.Tag = ref.Name(), ref.Tag
		} else {
			r.Name = n
		}
		if r.Tag == "" {
			r.Tag = "<none>"
		}
		out = append(out, r)
	}
	return out
}

func humanTime(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "Less than a minute ago"
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d.Hours()), "hour") + " ago"
	case d < 14*24*time.Hour:
		return plural(int(d.Hours()/24), "day") + " ago"
	}
	return plural(int(d.Hours()/24/7), "week") + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		if unit == "hour" {
			return "An hour"
		}
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
