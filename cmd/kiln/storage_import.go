package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/store/backup"
)

type storageImportOptions struct {
	Dir     string
	Quiet   bool
	NoMount bool
}

func init() { registerStorage(newStorageImportCommand) }

func newStorageImportCommand() *cobra.Command {
	var o storageImportOptions
	cmd := &cobra.Command{
		Use:   "import --dir DIR",
		Short: "Add everything a `storage export` wrote to the store",
		Long: `Import adds what DIR holds (written by kiln storage export) to the store, whatever
its driver: every blob is checked against its digest and every layer against its
diff ID, so image IDs and manifest digests are the same as before. Working
containers keep their ID, name, state and writes, and are mounted again if they
were mounted. What the store has already is kept, so an interrupted import is
finished by running it again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			idx, err := backup.ReadIndex(o.Dir)
			if err != nil {
				return err
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			start := time.Now()
			p := newStorageProgress(cmd.ErrOrStderr(), o.Quiet)
			rep, err := backup.Import(ctx, st, o.Dir, backup.ImportOptions{Progress: p.callback(), Mount: !o.NoMount})
			p.finish()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d images, %d layers, %d containers, %d build cache entries (%s) from %s in %s\n",
				rep.Images, rep.Layers, rep.Containers, rep.CacheEntries, store.HumanBytes(idx.Bytes()), o.Dir, rate(idx.Bytes(), time.Since(start)))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", "", "directory a `kiln storage export` wrote")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print no progress")
	f.BoolVar(&o.NoMount, "no-mount", false, "leave containers that were mounted unmounted")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}
