package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/store"
)

type storageCheckOptions struct {
	Repair, Digests, Quiet bool
	Format                 string
}

func init() { registerStorage(newStorageCheckCommand) }

// checkRow is one problem as --format json prints it.
type checkRow struct {
	Kind     string `json:"kind"`
	Object   string `json:"object"`
	Detail   string `json:"detail"`
	Repaired bool   `json:"repaired"`
	Error    string `json:"repairError,omitempty"`
}

func newStorageCheckCommand() *cobra.Command {
	var o storageCheckOptions
	cmd := &cobra.Command{
		Use:   "check [--repair] [--digests]",
		Short: "Find (and with --repair mend) damage in the store",
		Long: `Check looks the store over: layers left incomplete or used by nothing, snapshots
on disk nothing records and records whose snapshot is gone, missing blobs (and
with --digests, blobs whose content no longer matches their digest), names
pointing nowhere, and mounts nothing counts. With --repair it mends what is safe:
it finishes or undoes interrupted work, remakes a lost snapshot from its blob,
drops what nothing uses, unmounts leaked mounts, and removes images that cannot
be used any more unless a working container uses them. It exits 1 when problems
remain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			rep, err := st.Check(ctx, store.CheckOptions{Repair: o.Repair, Digests: o.Digests})
			if err != nil {
				return err
			}
			if err := printCheck(cmd, o, rep); err != nil {
				return err
			}
			if n := rep.Remaining(); n > 0 {
				hint := ""
				if !o.Repair {
					hint = ": run `kiln storage check --repair`"
				}
				return &exitError{code: 1, err: fmt.Errorf("%d problems remain in the store%s", n, hint)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Repair, "repair", false, "mend what is safe to mend")
	f.BoolVar(&o.Digests, "digests", false, "re-hash every blob against its digest")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print only problems")
	f.StringVar(&o.Format, "format", "", "output format: json")
	return cmd
}

func printCheck(cmd *cobra.Command, o storageCheckOptions, rep store.CheckReport) error {
	out := cmd.OutOrStdout()
	if o.Format == "json" {
		rows := []checkRow{}
		for _, p := range rep.Problems {
			r := checkRow{Kind: p.Kind.String(), Object: p.Object, Detail: p.Detail, Repaired: p.Repaired}
			if p.RepairErr != nil {
				r.Error = p.RepairErr.Error()
			}
			rows = append(rows, r)
		}
		return printJSON(out, rows)
	}
	if o.Format != "" {
		return usageErrorf("unknown --format %q: use json", o.Format)
	}
	for _, p := range rep.Problems {
		status := ""
		switch {
		case p.Repaired:
			status = " [repaired]"
		case p.RepairErr != nil:
			status = fmt.Sprintf(" [not repaired: %v]", p.RepairErr)
		}
		fmt.Fprintf(out, "%s %s: %s%s\n", p.Kind, p.Object, p.Detail, status)
	}
	if !o.Quiet {
		fmt.Fprintf(out, "checked %d images, %d layers, %d blobs: %d problems, %d repaired, %d remain\n",
			rep.Images, rep.Layers, rep.Blobs, len(rep.Problems), len(rep.Problems)-rep.Remaining(), rep.Remaining())
	}
	return nil
}
