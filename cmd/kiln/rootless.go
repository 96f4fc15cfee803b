package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/idmap"
	"github.com/kiln-build/kiln/internal/storageconf"
)

// outsideUserNamespace lists the verbs a rootless kiln runs as the user
// itself: they touch no store (mount is decided in enterUserNamespace).
var outsideUserNamespace = map[string]bool{"version": true, "help": true, "login": true, "logout": true}

// enterUserNamespace re-executes a rootless kiln, before anything touches
// the store, in a user and mount namespace of its own (internal/idmap)
// and returns an exitError carrying the status of that run, for main to
// exit with. As root, inside the namespace already (euid 0 there), and
// for the verbs that need no store, it returns nil and the verb runs
// here.
func enterUserNamespace(cmd *cobra.Command, args []string) error {
	if os.Geteuid() == 0 || outsideUserNamespace[cmd.Name()] {
		return nil
	}
	// A mount made by a namespace that ends with the command would be
	// gone before the caller could use it: Buildah's rule and message.
	if cmd.Name() == "mount" && cmd.Parent() == cmd.Root() && len(args) > 0 {
		s, err := storageconf.Resolve(storageconf.Overrides{
			ConfigPath: globals.StorageConf, Root: globals.Root, RunRoot: globals.RunRoot,
			Driver: globals.StorageDriver, Opts: globals.StorageOpts,
		})
		if err != nil {
			return err
		}
		if driver, err := storageconf.NormalizeDriver(s.Driver); err == nil && driver != "vfs" {
			return fmt.Errorf("cannot mount using driver %s in rootless mode. You need to run it in a `kiln unshare` session", driver)
		}
	}
	p, err := idmap.PlanFor(uint32(os.Getuid()), uint32(os.Getgid()), idmap.SubUIDFile, idmap.SubGIDFile)
	if err != nil {
		return err
	}
	if p.Note != "" {
		logger.Warn(p.Note)
	}
	code, err := idmap.Enter(cmd.Context(), p, os.Args, os.Environ())
	return &exitError{code: code, err: err}
}
