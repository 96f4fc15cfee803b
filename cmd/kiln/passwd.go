package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

func init() { register(newPasswdCommand) }

// newPasswdCommand is Buildah's hidden passwd verb: the bcrypt hash of a
// password, for a registry's htpasswd file (Buildah's test helpers make
// their registry's users with it).
func newPasswdCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "passwd PASSWORD",
		Short:  "Print the bcrypt hash of a password, for an htpasswd file",
		Hidden: true,
		Args:   exactArgs(1, "a password"),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := bcrypt.GenerateFromPassword([]byte(args[0]), bcrypt.DefaultCost)
			if err != nil {
				return fmt.Errorf("hashing the password: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(h))
			return nil
		},
	}
}
