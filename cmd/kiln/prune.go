package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
)

type pruneOptions struct {
	All         bool
	Force       bool
	Filters     []string
	KeepStorage string
}

func init() { register(newPruneCommand) }

func newPruneCommand() *cobra.Command {
	var o pruneOptions
	cmd := &cobra.Command{
		Use:   "prune [options]",
		Short: "Remove unused images, the build cache, and unreferenced layers and blobs",
		Long: `Prune removes images without a name that no working container uses (with --all,
every image no working container uses), the build cache (down to --keep-storage
bytes, least recently used first), and then every layer and blob nothing
references. --filter until=TIME and label=KEY[=VALUE] (label!=...) narrow the
images removed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			keep, err := parseKeepStorage(o.KeepStorage)
			if err != nil {
				return err
			}
			what := "unnamed images no container uses, the build cache"
			if keep > 0 {
				what = fmt.Sprintf("unnamed images no container uses, the build cache beyond %s", store.HumanBytes(keep))
			}
			if o.All {
				what = strings.Replace(what, "unnamed images", "all images", 1)
			}
			return runPrune(cmd, o, what, store.PruneOptions{All: o.All, BuildCache: true, KeepStorage: keep})
		},
	}
	addPruneFlags(cmd, &o)
	cmd.Flags().StringVar(&o.KeepStorage, "keep-storage", "0", "build cache to keep, in bytes (units K, M, G)")
	return cmd
}

func addPruneFlags(cmd *cobra.Command, o *pruneOptions) {
	f := cmd.Flags()
	f.BoolVarP(&o.All, "all", "a", false, "remove every image no working container uses, not only unnamed ones")
	f.BoolVarP(&o.Force, "force", "f", false, "do not ask for confirmation")
	f.StringArrayVar(&o.Filters, "filter", nil, "only images that match: until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE]")
}

func parseKeepStorage(v string) (int64, error) {
	n, err := store.ParseSize(v)
	if err != nil {
		return 0, usageErrorf("bad --keep-storage: %v", err)
	}
	return n, nil
}

// runPrune asks (unless --force), prunes and prints what went.
func runPrune(cmd *cobra.Command, o pruneOptions, what string, po store.PruneOptions) error {
	ctx := cmd.Context()
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	f, err := images.ParseFilter(ctx, st, o.Filters, images.FilterOptions{Keys: images.PruneKeys, Verb: "prune", Now: time.Now()})
	if err != nil {
		return err
	}
	po.Images = f.Func()
	out := cmd.OutOrStdout()
	if !o.Force && !confirm(cmd.InOrStdin(), out, "WARNING! This removes "+what+", and every layer and blob nothing uses.") {
		fmt.Fprintln(out, "nothing removed")
		return nil
	}
	rep, err := st.Prune(ctx, po)
	for _, img := range rep.Images {
		for _, n := range img.Names {
			fmt.Fprintf(out, "untagged: %s\n", n)
		}
		fmt.Fprintln(out, img.ID)
	}
	if err != nil {
		return err
	}
	if rep.CacheEntries > 0 {
		fmt.Fprintf(out, "removed %d build cache entries\n", rep.CacheEntries)
	}
	fmt.Fprintf(out, "Total reclaimed space: %s\n", store.HumanBytes(rep.Reclaimed))
	return nil
}

// confirm asks a yes/no question on in; anything but y or yes (an empty
// or closed input too) is no.
func confirm(in io.Reader, out io.Writer, warning string) bool {
	fmt.Fprintf(out, "%s\nAre you sure you want to continue? [y/N] ", warning)
	line, _ := bufio.NewReader(in).ReadString('\n')
	fmt.Fprintln(out)
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}
