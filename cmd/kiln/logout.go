package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/transport"
)

type logoutOptions struct {
	All bool
	registryFlags
}

func init() { register(newLogoutCommand) }

func newLogoutCommand() *cobra.Command {
	var o logoutOptions
	cmd := &cobra.Command{
		Use:   "logout [options] [REGISTRY]",
		Short: "Remove the stored credentials of a registry (or, with --all, of every registry)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sys := o.systemContext()
			if o.All {
				if len(args) > 0 {
					return usageErrorf("--all takes no registry")
				}
				if err := transport.Logout("", true, sys); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "Removed login credentials for all registries")
				return nil
			}
			reg, err := registryArg(args, sys)
			if err != nil {
				return err
			}
			err = transport.Logout(reg, false, sys)
			if errors.Is(err, transport.ErrNotLoggedIn) {
				if _, lerr := transport.LookupCredentials(reg, sys); lerr == nil && o.AuthFile == "" {
					return fmt.Errorf("not logged into %s with kiln: its credentials come from another file (such as ~/.docker/config.json); use `docker logout %s` or --authfile", reg, reg)
				}
				return fmt.Errorf("not logged into %s: %w", reg, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed login credentials for %s\n", reg)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.All, "all", "a", false, "remove the credentials of every registry")
	f.StringVar(&o.AuthFile, "authfile", "", "path of the authentication file")
	return cmd
}
