package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/transport"
)

type commitOptions struct {
	Format                     string
	Squash, Rm, Quiet          bool
	IIDFile, Manifest          string
	Timestamp                  int64
	OmitTimestamp              bool
	ReferenceTime              string
	DisableCompression         bool
	UnsetEnv, EncryptionKey    []string
	EncryptLayers              []int
	OmitHistory, IdentityLabel bool
	registryFlags
	retryFlags
	sign signFlags
}

func init() { register(newCommitCommand) }

func newCommitCommand() *cobra.Command {
	var o commitOptions
	cmd := &cobra.Command{
		Use:   "commit [options] CONTAINER [IMAGE]",
		Short: "Create an image from a working container, in local storage or at any destination push takes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCommit(cmd.Context(), cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Format, "format", "f", "oci", "image format: oci or docker")
	f.BoolVar(&o.Squash, "squash", false, "squash all layers into one")
	f.BoolVar(&o.Rm, "rm", false, "remove the working container after committing")
	f.StringVar(&o.IIDFile, "iidfile", "", "write the image ID to this file instead of printing it")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress while writing to a destination")
	f.Int64Var(&o.Timestamp, "timestamp", 0, "set created time and file times to this many seconds since the epoch")
	f.BoolVar(&o.OmitTimestamp, "omit-timestamp", false, "set created time and file times to the epoch (--timestamp 0)")
	_ = f.MarkHidden("omit-timestamp")
	f.StringVar(&o.ReferenceTime, "reference-time", "", "set created time and file times to this file's modification time")
	_ = f.MarkHidden("reference-time")
	f.BoolVarP(&o.DisableCompression, "disable-compression", "D", true, "do not compress the layers written to a destination")
	f.StringSliceVar(&o.UnsetEnv, "unsetenv", nil, "leave this environment variable out of the image")
	f.StringVar(&o.Manifest, "manifest", "", "add the image to this manifest list, which is created if missing")
	f.BoolVar(&o.OmitHistory, "omit-history", false, "write the image without history")
	f.BoolVar(&o.IdentityLabel, "identity-label", false, "label the image with the builder's version (not supported: kiln is not Buildah, whose label this is)")
	f.StringSliceVar(&o.EncryptionKey, "encryption-key", nil, "encrypt the image's layers (not supported)")
	f.IntSliceVar(&o.EncryptLayers, "encrypt-layer", nil, "layers to encrypt (not supported)")
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	o.sign.add(f)
	return optionsFirst(cmd)
}

// historyTime is the time the flags give the image and its files
// (--timestamp, --omit-timestamp, --reference-time, or
// SOURCE_DATE_EPOCH); nil for now.
func (o commitOptions) historyTime(f *pflag.FlagSet, cmd *cobra.Command) (*time.Time, error) {
	n := 0
	for _, name := range []string{"timestamp", "omit-timestamp", "reference-time"} {
		if f.Changed(name) {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("can not use more then one timestamp option at at time")
	}
	switch {
	case o.OmitTimestamp:
		t := time.Unix(0, 0).UTC()
		return &t, nil
	case o.ReferenceTime != "":
		fi, err := os.Stat(o.ReferenceTime)
		if err != nil {
			return nil, fmt.Errorf("reading timestamp of file %q: %w", o.ReferenceTime, err)
		}
		t := fi.ModTime().UTC()
		return &t, nil
	}
	return timestamp(cmd, o.Timestamp)
}

// refused names the flags given that kiln does not implement.
func (o commitOptions) refused() error {
	switch {
	case len(o.EncryptionKey) > 0 || len(o.EncryptLayers) > 0:
		return usageErrorf("--encryption-key, --encrypt-layer: encrypted images are not supported")
	case o.IdentityLabel:
		return usageErrorf("--identity-label: kiln does not label images with a builder version (Buildah's io.buildah.version)")
	}
	return nil
}

func runCommit(ctx context.Context, cmd *cobra.Command, o commitOptions, args []string) error {
	if err := o.refused(); err != nil {
		return err
	}
	if err := o.registryFlags.check(); err != nil {
		return err
	}
	format, err := image.ParseFormat(o.Format)
	if err != nil {
		return err
	}
	ts, err := o.historyTime(cmd.Flags(), cmd)
	if err != nil {
		return err
	}
	dest := ""
	if len(args) == 2 {
		dest = args[1]
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := container.Open(ctx, st, args[0])
	if err != nil {
		return fmt.Errorf("reading build container %q: %w", args[0], err)
	}
	target, closeTarget, err := o.target(ctx, dest)
	if err != nil {
		return err
	}
	defer closeTarget()
	co := images.CommitOptions{Container: container.CommitOptions{
		Format: format, Timestamp: ts, Squash: o.Squash, UnsetEnv: o.UnsetEnv, OmitHistory: o.OmitHistory, Logger: logger, Again: true,
	}}
	if co.Push, err = o.pushOptions(); err != nil {
		return err
	}
	if co.Push.Sign.Enabled() && target.Ref == nil {
		return usageErrorf("--sign-by: kiln signs an image where it is written to (a registry, a layout, ...), not in local storage: commit to such a destination, or sign with push")
	}
	prog := newCopyProgress(cmd.ErrOrStderr(), o.Quiet)
	co.Push.Progress = prog.progress()
	img, err := images.Commit(ctx, st, c, target, co)
	prog.finish()
	if err != nil {
		// Buildah's words for a registry BUILD_REGISTRY_SOURCES keeps out.
		var d *transport.DeniedError
		if errors.As(err, &d) {
			return fmt.Errorf("commit to registry at %q denied by policy: %s", d.Registry, d.Reason)
		}
		return fmt.Errorf("committing container %q to %q: %w", c.Name(), dest, err)
	}
	if o.Manifest != "" {
		list, err := image.NormalizeName(o.Manifest)
		if err != nil {
			return err
		}
		if err := images.AddBuilt(ctx, st, list, img.ID, c.Config().OCI().Platform); err != nil {
			return err
		}
	}
	if o.IIDFile != "" {
		if err := os.WriteFile(o.IIDFile, []byte("sha256:"+img.ID), 0o644); err != nil {
			return fmt.Errorf("writing --iidfile: %w", err)
		}
	} else {
		fmt.Fprintln(cmd.OutOrStdout(), img.ID)
	}
	if o.Rm {
		return c.Remove(ctx)
	}
	return nil
}

// target reads commit's IMAGE as Buildah does: nothing, a name in local
// storage, containers-storage:[DRIVER@ROOT+RUNROOT]NAME (another kiln
// store), or a reference with a transport (dir:, docker://, ...). The
// returned function closes another store it opened.
func (o commitOptions) target(ctx context.Context, dest string) (images.CommitTarget, func(), error) {
	var t images.CommitTarget
	none := func() {}
	if dest == "" {
		return t, none, nil
	}
	sr, ok, err := images.ParseStorageRef(dest)
	if err != nil {
		return t, none, err
	}
	if ok {
		name, err := image.NormalizeName(sr.Name)
		if err != nil {
			return t, none, err
		}
		if !sr.Elsewhere() {
			t.Names = []string{name}
			return t, none, nil
		}
		other, err := openStoreAt(ctx, sr.Root, sr.RunRoot, sr.Driver)
		if err != nil {
			return t, none, err
		}
		t.Store, t.StoreNames = other, []string{name}
		return t, func() { other.Close() }, nil
	}
	if hasTransport(dest) {
		ref, err := transport.ParseReference(dest)
		if err != nil {
			return t, none, err
		}
		t.Ref = ref
		return t, none, nil
	}
	name, err := image.NormalizeName(dest)
	if err != nil {
		return t, none, err
	}
	t.Names = []string{name}
	return t, none, nil
}

// pushOptions are how an image committed outside local storage is
// written: uncompressed unless --disable-compression=false, signed as
// the sign flags say.
func (o commitOptions) pushOptions() (images.PushOptions, error) {
	po := images.PushOptions{System: o.systemContext()}
	po.Copy.Logger = logger
	po.Copy.Compression = transport.CompressionGzip
	if o.DisableCompression {
		po.Copy.Compression = transport.CompressionKeep
	}
	o.retryFlags.apply(po.System, &po.Copy)
	var err error
	po.Sign, err = o.sign.options()
	return po, err
}

// hasTransport reports whether s names its transport ("dir:...",
// "docker://...") rather than being an image name.
func hasTransport(s string) bool {
	return strings.HasPrefix(s, "docker://") || images.IsTransportRef(s)
}
