package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/transport"
)

type fromOptions struct {
	Name, Suffix, CIDFile  string
	Pull                   string
	PullAlways, PullNever  bool
	Quiet                  bool
	Format                 string
	Isolation              string
	CapAdd, CapDrop        []string
	Volumes, DecryptionKey []string
	// SecurityOpts are recorded for later runs.
	SecurityOpts                    []string
	Network                         string
	HTTPProxy                       bool
	UserNS, UIDMapUser, GIDMapGroup string
	UIDMap, GIDMap                  []string
	runSettingsFlags
	registryFlags
	retryFlags
	platformFlags
}

func init() { register(newFromCommand) }

func newFromCommand() *cobra.Command {
	var o fromOptions
	cmd := &cobra.Command{
		Use:   "from [options] IMAGE",
		Short: "Create a working container based on an image",
		Args:  exactArgs(1, "an image name, ID, or \"scratch\""),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFrom(cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "name for the working container")
	f.StringVar(&o.Suffix, "suffix", "", "suffix of the default container name, instead of working-container")
	_ = f.MarkHidden("suffix")
	f.StringVar(&o.CIDFile, "cidfile", "", "write the container ID to this file")
	f.StringVar(&o.Pull, "pull", "missing", "pull policy: missing (or false), always, never, or newer (or true)")
	f.Lookup("pull").NoOptDefVal = "true"
	f.BoolVar(&o.PullAlways, "pull-always", false, "pull the image even if it is in local storage (--pull=always)")
	f.BoolVar(&o.PullNever, "pull-never", false, "use the image in local storage only (--pull=never)")
	_ = f.MarkHidden("pull-always")
	_ = f.MarkHidden("pull-never")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress while pulling")
	f.StringVarP(&o.Format, "format", "f", "oci", "format of the image's manifest and metadata")
	f.StringVar(&o.Isolation, "isolation", os.Getenv("BUILDAH_ISOLATION"), "isolation later runs use by default: oci or chroot (default $BUILDAH_ISOLATION)")
	f.StringSliceVar(&o.CapAdd, "cap-add", nil, "add a capability to later runs")
	f.StringSliceVar(&o.CapDrop, "cap-drop", nil, "drop a capability from later runs")
	f.StringArrayVarP(&o.Volumes, "volume", "v", nil, "bind mount HOST:CONTAINER[:OPTIONS] in later runs")
	f.StringArrayVar(&o.SecurityOpts, "security-opt", nil, "security option for later runs: seccomp=unconfined|FILE, no-new-privileges, mask=, unmask=")
	f.StringSliceVar(&o.DecryptionKey, "decryption-key", nil, "key to decrypt an encrypted image (not supported)")
	f.StringVar(&o.Network, "network", "", "network later runs use by default: host, none or private")
	f.BoolVar(&o.HTTPProxy, "http-proxy", true, "pass kiln's proxy environment variables (http_proxy, ...) to later runs")
	f.StringVar(&o.UserNS, "userns", "", "user namespace of later runs: host (others are not supported)")
	f.StringSliceVar(&o.UIDMap, "userns-uid-map", nil, "UID mapping of a user namespace (not supported)")
	f.StringSliceVar(&o.GIDMap, "userns-gid-map", nil, "GID mapping of a user namespace (not supported)")
	f.StringVar(&o.UIDMapUser, "userns-uid-map-user", "", "name of /etc/subuid entries for a user namespace (not supported)")
	f.StringVar(&o.GIDMapGroup, "userns-gid-map-group", "", "name of /etc/subgid entries for a user namespace (not supported)")
	o.runSettingsFlags.add(f)
	addUnsupportedFlags(f, "cni-config-dir", "cni-plugin-path")
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	o.platformFlags.add(f)
	f.SetNormalizeFunc(buildahAliases)
	return optionsFirst(cmd)
}

// pullPolicy is from's --pull, --pull-always and --pull-never as Buildah
// reads them: only one may be given; --pull alone (or true) pulls a newer
// image, false pulls a missing one.
func (o fromOptions) pullPolicy(cmd *cobra.Command) (images.PullPolicy, error) {
	n := 0
	for _, name := range []string{"pull", "pull-always", "pull-never"} {
		if cmd.Flags().Changed(name) {
			n++
		}
	}
	if n > 1 {
		return 0, errors.New("can only set one of 'pull' or 'pull-always' or 'pull-never'")
	}
	switch {
	case o.PullAlways:
		return images.PullAlways, nil
	case o.PullNever:
		return images.PullNever, nil
	case strings.EqualFold(strings.TrimSpace(o.Pull), "true"):
		return images.PullNewer, nil
	}
	return images.ParsePullPolicy(o.Pull)
}

// refused names the flags given that kiln does not implement.
func (o fromOptions) refused() error {
	switch {
	case len(o.DecryptionKey) > 0:
		return usageErrorf("--decryption-key: encrypted images are not supported")
	case o.UserNS != "" && o.UserNS != "host":
		return usageErrorf("--userns %q: kiln runs in the host's user namespace (or, rootless, in the one it enters); other user namespaces are not supported", o.UserNS)
	case len(o.UIDMap) > 0 || len(o.GIDMap) > 0 || o.UIDMapUser != "" || o.GIDMapGroup != "":
		return usageErrorf("--userns-uid-map, --userns-gid-map, --userns-uid-map-user, --userns-gid-map-group: ID-mapped containers are not supported")
	}
	return nil
}

// newOptions are the settings of the new container the flags give.
func (o fromOptions) newOptions(f *pflag.FlagSet) (container.NewOptions, error) {
	no := container.NewOptions{Name: o.Name, Suffix: o.Suffix, CapAdd: o.CapAdd, CapDrop: o.CapDrop}
	if err := o.refused(); err != nil {
		return no, err
	}
	network := run.NetworkHost
	if o.Network != "" {
		var err error
		if network, err = run.ParseNetwork(o.Network); err != nil {
			return no, err
		}
		no.Network = network.String()
	}
	settings, err := o.runSettingsFlags.settings(f, network)
	if err != nil {
		return no, err
	}
	if !reflect.DeepEqual(settings, run.Settings{}) {
		no.RunSettings = &settings
	}
	if !o.HTTPProxy {
		no.NoHTTPProxy = true
	}
	sec, err := run.ParseSecurityOpts(o.SecurityOpts)
	if err != nil {
		return no, err
	}
	no.SecurityOpts = sec.Options()
	if o.Isolation != "" {
		iso, err := run.ParseIsolation(o.Isolation)
		if err != nil {
			return no, err
		}
		no.Isolation = iso.String()
	}
	for _, v := range o.Volumes {
		if _, err := run.ParseVolume(v); err != nil {
			return no, err
		}
	}
	no.Volumes = o.Volumes
	p, err := o.platformFlags.platform()
	if err != nil {
		return no, err
	}
	no.Platform.OS, no.Platform.Architecture, no.Platform.Variant = image.NormalizePlatform(p.OS, p.Architecture, p.Variant)
	return no, nil
}

func runFrom(cmd *cobra.Command, o fromOptions, ref string) error {
	ctx := cmd.Context()
	if err := o.registryFlags.check(); err != nil {
		return err
	}
	policy, err := o.pullPolicy(cmd)
	if err != nil {
		return err
	}
	no, err := o.newOptions(cmd.Flags())
	if err != nil {
		return err
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	pull := newPullOptions(o.registryFlags, o.retryFlags, transport.Platform{OS: no.Platform.OS, Architecture: no.Platform.Architecture, Variant: no.Platform.Variant})
	fo := images.FromOptions{Ensure: images.EnsureOptions{Policy: policy, Pull: pull, Logger: logger}, Container: no}
	prog := newCopyProgress(cmd.ErrOrStderr(), o.Quiet)
	fo.Ensure.Pull.Progress = prog.progress()
	c, err := images.From(ctx, st, ref, fo)
	prog.finish()
	if err != nil {
		return err
	}
	if o.CIDFile != "" {
		if err := os.WriteFile(o.CIDFile, []byte(c.ID()), 0o644); err != nil {
			return fmt.Errorf("writing container ID file %q: %w", o.CIDFile, err)
		}
	}
	fmt.Fprintln(cmd.OutOrStdout(), c.Name())
	return nil
}
