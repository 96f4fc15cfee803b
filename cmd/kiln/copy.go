package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/store"
)

type copyOptions struct {
	Chown, Chmod, From string
	Quiet              bool
	ContextDir         string
}

func init() {
	register(func() *cobra.Command { return newCopyCommand("copy", false) })
	register(func() *cobra.Command { return newCopyCommand("add", true) })
}

func newCopyCommand(verb string, add bool) *cobra.Command {
	var o copyOptions
	short := "Copy files into a working container"
	if add {
		short = "Add files, URLs and the contents of archives into a working container"
	}
	cmd := &cobra.Command{
		Use:   verb + " [options] CONTAINER SOURCE [SOURCE...] [DEST]",
		Short: short,
		Args:  minArgs(2, "a container and at least one source"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCopy(cmd.Context(), o, add, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Chown, "chown", "", "set ownership of the copied files to USER[:GROUP]")
	f.StringVar(&o.Chmod, "chmod", "", "set permissions of the copied files (octal)")
	f.StringVar(&o.From, "from", "", "copy from this container or image instead of the host")
	f.StringVar(&o.ContextDir, "contextdir", "", "directory relative sources are read from")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print the digest of the copied content")
	addIgnoredFlags(f, "ignorefile", "checksum", "retry", "retry-delay", "cert-dir", "creds", "tls-verify", "certs-dir")
	return optionsFirst(cmd)
}

func runCopy(ctx context.Context, o copyOptions, add bool, args []string) error {
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := container.Open(ctx, st, args[0])
	if err != nil {
		return err
	}
	srcs, dest := args[1:], "."
	if len(srcs) > 1 {
		srcs, dest = args[1:len(args)-1], args[len(args)-1]
	}
	co := container.CopyOptions{Sources: srcs, Dest: dest, Chown: o.Chown, Chmod: o.Chmod, Add: add, ContextDir: o.ContextDir}
	if co.ContextDir == "" {
		co.ContextDir, _ = os.Getwd()
	}
	if o.From != "" {
		root, release, err := mountSource(ctx, st, o.From)
		if err != nil {
			return err
		}
		defer release()
		co.FromRoot = root
	}
	if err := c.Copy(ctx, co); err != nil {
		return fmt.Errorf("copying into %s: %w", c.Name(), err)
	}
	return nil
}

// mountSource mounts a container, or a temporary container of an image,
// as the source of --from; release undoes it.
func mountSource(ctx context.Context, st *store.Store, ref string) (string, func(), error) {
	if src, err := container.Open(ctx, st, ref); err == nil {
		p, err := src.Mount(ctx)
		if err != nil {
			return "", nil, err
		}
		return p, func() { _ = src.Unmount(ctx, false) }, nil
	}
	tmp, err := container.New(ctx, st, container.NewOptions{Image: ref, Name: fmt.Sprintf("kiln-copy-from-%d", os.Getpid())})
	if err != nil {
		return "", nil, fmt.Errorf("--from %q is neither a container nor an image: %w", ref, err)
	}
	p, err := tmp.Mount(ctx)
	if err != nil {
		_ = tmp.Remove(ctx)
		return "", nil, err
	}
	return p, func() { _ = tmp.Remove(context.WithoutCancel(ctx)) }, nil
}
