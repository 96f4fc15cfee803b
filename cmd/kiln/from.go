package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/run"
)

type fromOptions struct {
	Name   string
	Pull   string
	Quiet  bool
	Format string
	// SecurityOpts are recorded for later runs.
	SecurityOpts []string
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
	f.StringVar(&o.Pull, "pull", "missing", "pull policy: missing, always, never or newer")
	f.Lookup("pull").NoOptDefVal = "always"
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not print progress while pulling")
	f.StringVarP(&o.Format, "format", "f", "oci", "format of the image's manifest and metadata")
	f.StringArrayVar(&o.SecurityOpts, "security-opt", nil, "security option for later runs: seccomp=unconfined|FILE, no-new-privileges, mask=, unmask=")
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	o.platformFlags.add(f)
	addIgnoredFlags(f, "cap-add", "cap-drop", "cgroup-parent", "cidfile", "cpu-period", "cpu-quota", "cpu-shares", "cpuset-cpus", "cpuset-mems", "device", "dns", "dns-option", "dns-search", "http-proxy", "ipc", "isolation", "memory", "memory-swap", "network", "pid", "shm-size", "ulimit", "userns", "uts", "volume", "decryption-key")
	return cmd
}

func runFrom(cmd *cobra.Command, o fromOptions, ref string) error {
	ctx := cmd.Context()
	sec, err := run.ParseSecurityOpts(o.SecurityOpts)
	if err != nil {
		return err
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	// docker://NAME is the registry image NAME, as Buildah reads it.
	ref = strings.TrimPrefix(ref, "docker://")
	base := ref
	if ref != "scratch" {
		policy, err := parsePullPolicy(o.Pull)
		if err != nil {
			return err
		}
		p, err := o.platformFlags.platform()
		if err != nil {
			return err
		}
		ps := pullSettings{Registry: o.registryFlags, Retry: o.retryFlags, Platform: p, Quiet: o.Quiet, Progress: cmd.ErrOrStderr()}
		img, err := ensureImage(ctx, st, ref, policy, ps)
		if err != nil {
			return err
		}
		if isTransportRef(ref) {
			// The image was pulled from an archive or a layout: it is known
			// by its ID (and its name, when the source gave one).
			base = img.ID
		}
	}
	c, err := container.New(ctx, st, container.NewOptions{Image: base, Name: o.Name, SecurityOpts: sec.Options()})
	if err != nil {
		return fmt.Errorf("creating working container from %q: %w", ref, err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), c.Name())
	return nil
}
