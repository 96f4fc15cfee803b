package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
)

type containersOptions struct {
	All, Quiet, NoHeading, JSON, NoTrunc bool
	Format                               string
	Filters                              []string
}

func init() { register(newContainersCommand) }

// containerRow is one line of `containers`, with Buildah's field names.
type containerRow struct {
	ID            string `json:"id"`
	Builder       bool   `json:"builder"`
	ImageID       string `json:"imageid"`
	ImageName     string `json:"imagename"`
	ContainerName string `json:"containername"`
}

// ContainerID is the name Buildah's templates use for the ID.
func (r containerRow) ContainerID() string { return r.ID }

func newContainersCommand() *cobra.Command {
	var o containersOptions
	cmd := &cobra.Command{
		Use:     "containers [options]",
		Aliases: []string{"list", "ls", "ps"},
		Short:   "List working containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			all, err := container.All(ctx, st)
			if err != nil {
				return err
			}
			rows := []containerRow{}
			for _, c := range all {
				r := containerRow{ID: c.ID(), Builder: true, ImageID: c.State.FromImageID, ImageName: c.State.FromImage, ContainerName: c.Name()}
				if !filterContainer(r, o.Filters) {
					continue
				}
				rows = append(rows, r)
			}
			out := cmd.OutOrStdout()
			if o.JSON {
				return printJSON(out, rows)
			}
			if o.Quiet {
				for _, r := range rows {
					fmt.Fprintln(out, r.ID) // Buildah prints whole IDs here
				}
				return nil
			}
			format := o.Format
			var items []any
			// Buildah truncates IDs in its table only: a --format
			// template gets whole ones.
			trunc := format == "" && !o.NoTrunc
			if format == "" {
				format = "{{.ContainerID}}\t{{.BuilderMark}}\t{{.ImageID}}\t{{.ImageName}}\t{{.ContainerName}}"
				if !o.NoHeading {
					items = append(items, map[string]string{"ContainerID": "CONTAINER ID", "BuilderMark": "BUILDER", "ImageID": "IMAGE ID", "ImageName": "IMAGE NAME", "ContainerName": "CONTAINER NAME"})
				}
			}
			for _, r := range rows {
				if trunc {
					r.ID, r.ImageID = shortID(r.ID), shortID(r.ImageID)
				}
				items = append(items, map[string]any{"ContainerID": r.ID, "Builder": r.Builder, "BuilderMark": "   *", "ImageID": r.ImageID, "ImageName": r.ImageName, "ContainerName": r.ContainerName, "ID": r.ID})
			}
			return render(out, format, items, false)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.All, "all", "a", false, "also list containers kiln did not make (there are none)")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print only container IDs")
	f.BoolVarP(&o.NoHeading, "noheading", "n", false, "do not print column headings")
	f.BoolVar(&o.JSON, "json", false, "output in JSON format")
	f.BoolVar(&o.NoTrunc, "notruncate", false, "do not truncate IDs")
	f.StringVar(&o.Format, "format", "", "pretty-print containers using a Go template")
	f.StringArrayVarP(&o.Filters, "filter", "f", nil, "filter output (id=, name=, ancestor=)")
	return cmd
}

// shortID is the first 12 digits of an ID.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func filterContainer(r containerRow, filters []string) bool {
	for _, f := range filters {
		k, v, _ := cutKV(f)
		switch k {
		case "id":
			if len(r.ID) < len(v) || r.ID[:len(v)] != v {
				return false
			}
		case "name":
			if r.ContainerName != v {
				return false
			}
		case "ancestor":
			if r.ImageName != v && r.ImageID != v {
				return false
			}
		}
	}
	return true
}

func cutKV(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
