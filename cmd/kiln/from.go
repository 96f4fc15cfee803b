package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/images"
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
	return optionsFirst(cmd)
}

func runFrom(cmd *cobra.Command, o fromOptions, ref string) error {
	ctx := cmd.Context()
	sec, err := run.ParseSecurityOpts(o.SecurityOpts)
	if err != nil {
		return err
	}
	policy, err := images.ParsePullPolicy(o.Pull)
	if err != nil {
		return err
	}
	p, err := o.platformFlags.platform()
	if err != nil {
		return err
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	fo := images.FromOptions{
		Ensure:    images.EnsureOptions{Policy: policy, Pull: newPullOptions(o.registryFlags, o.retryFlags, p), Logger: logger},
		Container: container.NewOptions{Name: o.Name, SecurityOpts: sec.Options()},
	}
	prog := newCopyProgress(cmd.ErrOrStderr(), o.Quiet)
	fo.Ensure.Pull.Progress = prog.progress()
	c, err := images.From(ctx, st, ref, fo)
	prog.finish()
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), c.Name())
	return nil
}
