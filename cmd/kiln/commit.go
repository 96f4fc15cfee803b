package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
)

type commitOptions struct {
	Format    string
	Squash    bool
	Rm        bool
	IIDFile   string
	Quiet     bool
	Timestamp int64
	registryFlags
}

func init() { register(newCommitCommand) }

func newCommitCommand() *cobra.Command {
	var o commitOptions
	cmd := &cobra.Command{
		Use:   "commit [options] CONTAINER [IMAGE]",
		Short: "Create an image from a working container",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := timestamp(cmd, o.Timestamp)
			if err != nil {
				return err
			}
			return runCommit(cmd.Context(), cmd, o, ts, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Format, "format", "f", "oci", "image format: oci or docker")
	f.BoolVar(&o.Squash, "squash", false, "squash all layers into one")
	f.BoolVar(&o.Rm, "rm", false, "remove the working container after committing")
	f.StringVar(&o.IIDFile, "iidfile", "", "write the image ID to this file")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print only the image ID")
	f.Int64Var(&o.Timestamp, "timestamp", 0, "set created time and file times to this many seconds since the epoch")
	o.registryFlags.add(f)
	addIgnoredFlags(f, "compression-format", "disable-compression", "encryption-key", "manifest", "omit-history", "identity-label", "unsetenv", "sign-by", "reference-time", "cw", "add-file", "change", "pull")
	return optionsFirst(cmd)
}

func runCommit(ctx context.Context, cmd *cobra.Command, o commitOptions, ts *time.Time, args []string) error {
	format, err := image.ParseFormat(o.Format)
	if err != nil {
		return err
	}
	var names []string
	if len(args) == 2 {
		n, err := image.NormalizeName(args[1])
		if err != nil {
			return err
		}
		names = append(names, n)
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := container.Open(ctx, st, args[0])
	if err != nil {
		return err
	}
	img, err := c.Commit(ctx, container.CommitOptions{Names: names, Format: format, Timestamp: ts, Squash: o.Squash, Logger: logger})
	if err != nil {
		return err
	}
	if o.IIDFile != "" {
		if err := os.WriteFile(o.IIDFile, []byte("sha256:"+img.ID), 0o644); err != nil {
			return fmt.Errorf("writing --iidfile: %w", err)
		}
	}
	if o.Rm {
		if err := c.Remove(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintln(cmd.OutOrStdout(), img.ID)
	return nil
}
