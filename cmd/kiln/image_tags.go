package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/transport"
)

type imageTagsOptions struct {
	registryFlags
	retryFlags
}

func init() { registerImage(newImageTagsCommand) }

func newImageTagsCommand() *cobra.Command {
	var o imageTagsOptions
	cmd := &cobra.Command{
		Use:   "tags [options] docker://REPOSITORY",
		Short: "List the tags of a registry repository (like skopeo list-tags)",
		Args:  exactArgs(1, "a repository such as docker://HOST/REPO"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := transport.ParseReference(args[0])
			if err != nil {
				return err
			}
			if r.Transport() != transport.TransportDocker {
				return usageErrorf("%s: tags can only be listed in a registry (docker://HOST/REPO)", args[0])
			}
			sys := o.systemContext()
			o.retryFlags.apply(sys, &transport.CopyOptions{})
			repo, err := transport.RepositoryName(r, sys)
			if err != nil {
				return err
			}
			tags, err := transport.Tags(ctx, r, sys)
			if err != nil {
				return fmt.Errorf("listing tags of %s: %w", repo, err)
			}
			if tags == nil {
				tags = []string{}
			}
			return printJSON(cmd.OutOrStdout(), struct {
				Repository string
				Tags       []string
			}{repo, tags})
		},
	}
	o.registryFlags.add(cmd.Flags())
	o.retryFlags.add(cmd.Flags())
	return cmd
}
