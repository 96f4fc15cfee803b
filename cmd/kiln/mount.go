package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
)

type mountOptions struct{ JSON bool }

func init() { register(newMountCommand) }

func newMountCommand() *cobra.Command {
	var o mountOptions
	cmd := &cobra.Command{
		Use:   "mount [CONTAINER...]",
		Short: "Mount a working container's root filesystem, or list mounts",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				all, err := container.All(ctx, st)
				if err != nil {
					return err
				}
				var list []map[string]string
				for _, c := range all {
					if c.State.MountPoint != "" {
						list = append(list, map[string]string{"container": c.Name(), "mountPoint": c.State.MountPoint})
						if !o.JSON {
							fmt.Fprintf(out, "%s %s\n", c.Name(), c.State.MountPoint)
						}
					}
				}
				if o.JSON {
					return printJSON(out, list)
				}
				return nil
			}
			for _, ref := range args {
				c, err := container.Open(ctx, st, ref)
				if err != nil {
					return err
				}
				p, err := c.Mount(ctx)
				if err != nil {
					return fmt.Errorf("mounting %s: %w", ref, err)
				}
				if len(args) > 1 {
					fmt.Fprintf(out, "%s %s\n", c.Name(), p)
				} else {
					fmt.Fprintln(out, p)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "output in JSON format")
	return optionsFirst(cmd)
}
