package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/run"
)

type runOptions struct {
	Isolation, Runtime, User, WorkingDir, Network, Hostname string
	Env, Volumes, Mounts, CapAdd, CapDrop, SecurityOpts     []string
	TTY, NoPivot                                            bool
}

func init() { register(newRunCommand) }

func newRunCommand() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [options] CONTAINER [--] COMMAND [ARGS...]",
		Short: "Run a command inside a working container",
		Args:  minArgs(1, "a container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringVar(&o.Isolation, "isolation", "", "oci or chroot (default: oci when runc is installed and kiln is not inside a container)")
	f.StringVar(&o.Runtime, "runtime", "runc", "OCI runtime to use")
	f.StringVar(&o.User, "user", "", "run as USER[:GROUP] (default: the image's user)")
	f.StringVar(&o.WorkingDir, "workingdir", "", "working directory (default: the image's)")
	f.StringVar(&o.Network, "network", "host", "network: host, none or private")
	f.StringVar(&o.Hostname, "hostname", "", "hostname inside the container")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "add KEY=VALUE to the environment")
	f.StringArrayVarP(&o.Volumes, "volume", "v", nil, "bind mount HOST:CONTAINER[:OPTIONS]")
	f.StringArrayVar(&o.Mounts, "mount", nil, "mount type=bind|tmpfs,...")
	f.StringArrayVar(&o.CapAdd, "cap-add", nil, "add a capability")
	f.StringArrayVar(&o.CapDrop, "cap-drop", nil, "drop a capability")
	f.StringArrayVar(&o.SecurityOpts, "security-opt", nil, "seccomp=unconfined|FILE, no-new-privileges, mask=, unmask= (after those given to from)")
	f.BoolVarP(&o.TTY, "tty", "t", false, "allocate a terminal")
	f.BoolVar(&o.TTY, "terminal", false, "allocate a terminal")
	f.BoolVar(&o.NoPivot, "no-pivot", false, "do not use pivot_root")
	addIgnoredFlags(f, "runtime-flag", "ipc", "pid", "uts", "userns", "device", "cgroupns", "contextdir", "env-file", "workingdir-create")
	return cmd
}

func runRun(cmd *cobra.Command, o runOptions, args []string) error {
	ctx := cmd.Context()
	if len(args) > 1 && args[1] == "--" {
		args = append(args[:1:1], args[2:]...)
	}
	if len(args) < 2 {
		return fmt.Errorf("run needs a command after the container")
	}
	ro, err := runSpec(o)
	if err != nil {
		return err
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
	root, err := c.Mount(ctx)
	if err != nil {
		return err
	}
	defer c.Unmount(ctx, false)
	if ro.Security, err = run.ParseSecurityOpts(append(c.State.SecurityOpts, o.SecurityOpts...)); err != nil {
		return err
	}
	cfg := c.Config().Config
	ro.ContainerID, ro.Rootfs = c.ID(), root
	ro.RunDir = c.RunDir()
	ro.Args = args[1:]
	ro.Env = append(append([]string{}, cfg.Env...), o.Env...)
	if ro.User == "" {
		ro.User = cfg.User
	}
	if ro.WorkingDir == "" {
		ro.WorkingDir = cfg.WorkingDir
	}
	ro.Stdin, ro.Stdout, ro.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := os.MkdirAll(ro.RunDir, 0o700); err != nil {
		return err
	}
	// What a kiln killed during an earlier run left here goes first.
	if err := run.Cleanup(ro.RunDir); err != nil {
		logger.Warn("cleaning up after an earlier run", "err", err)
	}
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	defer signal.Reset(syscall.SIGINT, syscall.SIGTERM)
	code, err := run.Run(ctx, ro)
	switch {
	case errors.Is(err, run.ErrNotFound):
		return &exitError{code: 127, err: err}
	case errors.Is(err, run.ErrNotExecutable):
		return &exitError{code: 126, err: err}
	case err != nil:
		return err
	case code != 0:
		return &exitError{code: code, err: errors.New("")}
	}
	return nil
}

func runSpec(o runOptions) (run.Options, error) {
	ro := run.Options{User: o.User, WorkingDir: o.WorkingDir, Hostname: o.Hostname, CapAdd: o.CapAdd, CapDrop: o.CapDrop, Runtime: o.Runtime, NoPivot: o.NoPivot, Logger: logger}
	var err error
	ro.Isolation = run.DefaultIsolation()
	if o.Isolation != "" {
		if ro.Isolation, err = run.ParseIsolation(o.Isolation); err != nil {
			return ro, err
		}
	}
	if ro.Network, err = run.ParseNetwork(o.Network); err != nil {
		return ro, err
	}
	for _, v := range o.Volumes {
		m, err := run.ParseVolume(v)
		if err != nil {
			return ro, err
		}
		ro.Mounts = append(ro.Mounts, m)
	}
	for _, v := range o.Mounts {
		m, err := run.ParseMount(v)
		if err != nil {
			return ro, err
		}
		ro.Mounts = append(ro.Mounts, m)
	}
	ro.Terminal = o.TTY && term.IsTerminal(int(os.Stdin.Fd()))
	return ro, nil
}
