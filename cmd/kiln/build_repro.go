package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
)

// reproFlags are build's reproducibility flags, as Buildah and BuildKit
// define them. kiln is reproducible by default: whenever an epoch is
// set (--source-date-epoch, a SOURCE_DATE_EPOCH build arg or
// environment variable, --timestamp), created times in the config and
// history are the epoch and file times in new layers are clamped to it
// (--rewrite-timestamp is always on then).
type reproFlags struct {
	SourceDateEpoch  int64
	RewriteTimestamp bool
	Verify           bool
}

func (r *reproFlags) add(f *pflag.FlagSet) {
	f.Int64Var(&r.SourceDateEpoch, "source-date-epoch", 0, "seconds since the epoch for created times and file times (default $SOURCE_DATE_EPOCH); also the SOURCE_DATE_EPOCH build arg")
	f.BoolVar(&r.RewriteTimestamp, "rewrite-timestamp", true, "clamp the times of files in new layers to the epoch (always, when an epoch is set)")
	f.BoolVar(&r.Verify, "verify-reproducible", false, "build a second time without the cache and fail, naming the first differing file, unless the images are the same")
}

// apply sets the build's epoch: --timestamp (already in
// bo.Commit.Timestamp when given), else --source-date-epoch, else a
// SOURCE_DATE_EPOCH build arg, else the environment's (timestamp()).
// The epoch is passed on as the SOURCE_DATE_EPOCH build arg.
func (r reproFlags) apply(cmd *cobra.Command, bo *dockerfile.Options) error {
	flags := cmd.Flags()
	if flags.Changed("source-date-epoch") && flags.Changed("timestamp") {
		return usageErrorf("--source-date-epoch and --timestamp cannot be used together")
	}
	switch {
	case flags.Changed("source-date-epoch"):
		t := time.Unix(r.SourceDateEpoch, 0).UTC()
		bo.Commit.Timestamp = &t
	case !flags.Changed("timestamp") && bo.Args["SOURCE_DATE_EPOCH"] != "":
		n, err := strconv.ParseInt(bo.Args["SOURCE_DATE_EPOCH"], 10, 64)
		if err != nil {
			return usageErrorf("bad SOURCE_DATE_EPOCH build arg %q: want seconds since the epoch", bo.Args["SOURCE_DATE_EPOCH"])
		}
		t := time.Unix(n, 0).UTC()
		bo.Commit.Timestamp = &t
	}
	if flags.Changed("rewrite-timestamp") {
		switch {
		case bo.Commit.Timestamp == nil:
			return usageErrorf("--rewrite-timestamp needs an epoch: --source-date-epoch, SOURCE_DATE_EPOCH or --timestamp")
		case !r.RewriteTimestamp:
			return usageErrorf("--rewrite-timestamp=false: kiln always clamps file times to the epoch when one is set, so that builds are reproducible")
		}
	}
	if bo.Commit.Timestamp != nil {
		if bo.Args == nil {
			bo.Args = map[string]string{}
		}
		if _, ok := bo.Args["SOURCE_DATE_EPOCH"]; !ok {
			bo.Args["SOURCE_DATE_EPOCH"] = strconv.FormatInt(bo.Commit.Timestamp.Unix(), 10)
		}
	}
	return nil
}

// verifyReproducible builds bo again without the cache and compares the
// image with first: the same image ID passes; otherwise the second
// image is removed and the error names the first difference.
func verifyReproducible(ctx context.Context, st *store.Store, bo dockerfile.Options, first dockerfile.Result, w io.Writer) error {
	again := bo
	again.Cache.NoCache, again.Tags, again.Remote = true, nil, nil
	again.Out = io.Discard
	res, err := dockerfile.Build(ctx, st, again)
	if err != nil {
		return fmt.Errorf("--verify-reproducible: building again: %w", err)
	}
	if res.ImageID == first.ImageID {
		fmt.Fprintf(w, "reproducible: a second build without the cache made the same image %s\n", first.ImageID)
		return nil
	}
	d, err := images.Compare(ctx, st, first.ImageID, res.ImageID)
	if err != nil {
		return fmt.Errorf("--verify-reproducible: comparing the two builds: %w", err)
	}
	_ = st.RemoveImages(ctx, store.ImageRemoval{IDs: []string{res.ImageID}})
	return fmt.Errorf("not reproducible: the second build made image %.12s, not %.12s; first difference: %s", res.ImageID, first.ImageID, d)
}
