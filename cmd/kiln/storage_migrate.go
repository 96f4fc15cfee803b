package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/storageconf"
	"github.com/kiln-build/kiln/internal/storagemigrate"
	"github.com/kiln-build/kiln/internal/store"
)

type storageMigrateOptions struct {
	Driver  string
	KeepOld bool
	Quiet   bool
}

func init() { registerStorage(newStorageMigrateCommand) }

func newStorageMigrateCommand() *cobra.Command {
	var o storageMigrateOptions
	cmd := &cobra.Command{
		Use:   "migrate --driver NAME",
		Short: "Move the store to another storage driver without losing anything",
		Long: `Migrate exports the store, imports it into a new store of driver NAME beside the
old one (in ROOT/.kiln-migrate), checks that the new store holds everything, and
only then switches: the old store's files move aside, the new store's move in, and
storage.conf names the new driver. Until the switch the old store stays as it was.
Interrupted at any point, running the same command again finishes or restarts the
migration. No other kiln process may run meanwhile; writers are locked out while
the store is copied.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := storageSettings()
			if err != nil {
				return err
			}
			p := newStorageProgress(cmd.ErrOrStderr(), o.Quiet)
			rep, err := storagemigrate.Migrate(cmd.Context(), storagemigrate.Options{
				Store:      store.Options{Root: s.Root, RunRoot: s.RunRoot, Driver: s.Driver, DriverOpts: s.DriverOpts, Logger: logger},
				To:         o.Driver,
				ConfigPath: s.ConfigPath,
				KeepOld:    o.KeepOld,
				Progress:   p.callback(),
				Step:       p.println,
				Fault:      faultHook("migrate"),
			})
			p.finish()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "migrated %s from %s to %s: %d images, %d layers, %d containers (%s) in %s\n",
				s.Root, rep.From, rep.To, rep.Images, rep.Layer, rep.Containers, store.HumanBytes(rep.Bytes), rate(rep.Bytes, rep.Took))
			if rep.OldKept != "" {
				fmt.Fprintf(out, "the old %s store is kept in %s\n", rep.From, rep.OldKept)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Driver, "driver", "", "driver to move to: overlay, vfs or btrfs")
	f.BoolVar(&o.KeepOld, "keep-old", false, "keep the old store (renamed inside the root) instead of removing it")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print no progress")
	_ = cmd.MarkFlagRequired("driver")
	return cmd
}

// storageSettings resolves the store's location and driver as openStore does.
func storageSettings() (storageconf.Settings, error) {
	return storageconf.Resolve(storageconf.Overrides{
		ConfigPath: globals.StorageConf, Root: globals.Root, RunRoot: globals.RunRoot,
		Driver: globals.StorageDriver, Opts: globals.StorageOpts,
	})
}

// faultHook is the fault-injection hook of a verb, for the tests that
// kill it at named points: KILN_FAULT=VERB:POINT makes the process kill
// itself with SIGKILL (exit status 137) when it reaches POINT.
func faultHook(verb string) func(point string) {
	want := os.Getenv("KILN_FAULT")
	if want == "" {
		return nil
	}
	return func(point string) {
		if want == verb+":"+point {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}
