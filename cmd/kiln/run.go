package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/idmap"
	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/store"
)

type runOptions struct {
	Isolation, Runtime, User, WorkingDir, Network, Hostname string
	Env, Volumes, Mounts, CapAdd, CapDrop, SecurityOpts     []string
	TTY, NoPivot, NoHosts, AddHistory                       bool
	PID, IPC, UTS, Cgroupns, UserNS, ContextDir             string
	RuntimeFlags                                            []string
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
	f.StringVar(&o.Isolation, "isolation", "", "oci or chroot (default: the container's, else $BUILDAH_ISOLATION, else oci when runc is installed and kiln is not inside a container)")
	f.StringVar(&o.Runtime, "runtime", "runc", "OCI runtime to use")
	f.StringSliceVar(&o.RuntimeFlags, "runtime-flag", nil, "global option for the OCI runtime, without its leading dashes (debug, systemd-cgroup)")
	f.StringVar(&o.User, "user", "", "run as USER[:GROUP] (default: the image's user)")
	f.StringVar(&o.WorkingDir, "workingdir", "", "working directory (default: the image's)")
	f.StringVar(&o.Network, "network", "host", "network: host, none or private (default: the container's, else host)")
	f.StringVar(&o.Hostname, "hostname", "", "hostname inside the container")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "add KEY=VALUE to the environment")
	f.StringArrayVarP(&o.Volumes, "volume", "v", nil, "bind mount HOST:CONTAINER[:OPTIONS] (ro, rw, U: chown to the user, O[,upperdir=,workdir=]: an overlay, ...)")
	f.StringArrayVar(&o.Mounts, "mount", nil, "attach a mount: type=bind|tmpfs|cache,target=PATH[,OPTION...] (a bind is read-only unless rw; from=IMAGE binds a path of a local image)")
	f.StringVar(&o.ContextDir, "contextdir", "", "directory relative bind mount sources (--mount, --volume) are read from")
	f.StringSliceVar(&o.CapAdd, "cap-add", nil, "add a capability")
	f.StringSliceVar(&o.CapDrop, "cap-drop", nil, "drop a capability")
	f.StringArrayVar(&o.SecurityOpts, "security-opt", nil, "seccomp=unconfined|FILE, no-new-privileges, mask=, unmask= (after those given to from)")
	f.BoolVarP(&o.TTY, "terminal", "t", false, "allocate a pseudo-TTY (default: when stdin, stdout and stderr are terminals)")
	f.BoolVar(&o.NoPivot, "no-pivot", false, "do not use pivot_root")
	f.BoolVar(&o.NoHosts, "no-hosts", false, "do not create /etc/hosts; keep the image's")
	f.BoolVar(&o.AddHistory, "add-history", envBoolOr("BUILDAH_HISTORY", false), "record the command in the history of the next commit (default $BUILDAH_HISTORY)")
	f.StringVar(&o.PID, "pid", "", "private or host: the PID namespace (default: the container's)")
	f.StringVar(&o.IPC, "ipc", "", "private or host: the IPC namespace (default: the container's)")
	f.StringVar(&o.UTS, "uts", "", "private or host: the UTS namespace (default: the container's)")
	f.StringVar(&o.Cgroupns, "cgroupns", "", "private or host: the cgroup namespace (default: the container's)")
	f.StringVar(&o.UserNS, "userns", "", "user namespace: host (others are not supported)")
	_ = f.MarkHidden("userns")
	addUnsupportedFlags(f, "cni-config-dir", "cni-plugin-path")
	f.SetNormalizeFunc(buildahAliases)
	return cmd
}

func runRun(cmd *cobra.Command, o runOptions, args []string) error {
	ctx := cmd.Context()
	if len(args) > 1 && args[1] == "--" {
		args = append(args[:1:1], args[2:]...)
	}
	if len(args) < 2 {
		// Buildah's words; the image's entrypoint and cmd are not used.
		return errors.New("command must be specified: run needs a command after the container")
	}
	ro, fromStore, err := runSpec(o, cmd.Flags())
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
	if err := o.applyContainer(&ro, c.State, cmd.Flags()); err != nil {
		return err
	}
	mounts, release, err := storeMounts(ctx, st, fromStore)
	defer release()
	if err != nil {
		return err
	}
	ro.Mounts = append(ro.Mounts, mounts...)
	ro.Settings.Rlimits = run.WithDefaultRlimits(ro.Settings.Rlimits)
	cfg := c.Config().Config
	// The image's volumes are made when missing, as Buildah's run makes
	// them (they stay in the container, as in Buildah).
	for _, v := range slices.Sorted(maps.Keys(cfg.Volumes)) {
		if _, err := c.MkdirAll(ctx, v, ""); err != nil {
			return fmt.Errorf("making volume %s: %w", v, err)
		}
	}
	o.fromContainer(&ro, c, root)
	ro.Args = args[1:]
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
	if err == nil && code == 0 && o.AddHistory {
		if err := c.AddHistory(ctx, "/bin/sh -c "+strings.Join(ro.Args, " ")); err != nil {
			return err
		}
	}
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

// fromContainer gives the run what the working container c, mounted at
// root, decides: its identity, /run/.containerenv, architecture and run
// directory, and its image's environment, user and working directory
// where the run gives none.
func (o runOptions) fromContainer(ro *run.Options, c *container.Container, root string) {
	cfg := c.Config().Config
	ro.ContainerID, ro.Rootfs = c.ID(), root
	ro.HostAliases = []string{c.Name()}
	ro.PrimaryGroupInGroups = true
	rootless := 0
	if idmap.Rootless() {
		rootless = 1
	}
	ro.ContainerEnv = fmt.Sprintf("engine=%q\nname=%q\nid=%q\nimage=%q\nimageid=%q\nrootless=%d\n",
		"kiln-"+version, c.Name(), c.ID(), c.State.FromImage, c.State.FromImageID, rootless)
	ro.Architecture = c.Config().Architecture
	ro.RunDir = c.RunDir()
	ro.Env = slices.Clone(cfg.Env)
	if !c.State.NoHTTPProxy {
		ro.Env = append(ro.Env, proxyEnv()...)
	}
	ro.Env = append(ro.Env, o.Env...)
	if ro.User == "" {
		ro.User = cfg.User
	}
	if ro.WorkingDir == "" {
		ro.WorkingDir = cfg.WorkingDir
	}
}

// applyContainer puts what from recorded for the container's runs under
// the run's own settings: its isolation, network, limits, DNS, hosts and
// namespaces unless the run gives its own, its capabilities and volumes
// before the run's.
func (o runOptions) applyContainer(ro *run.Options, st container.State, f *pflag.FlagSet) error {
	var err error
	// Without --isolation: the container's (from --isolation, whose
	// default is $BUILDAH_ISOLATION, as Buildah records it), else
	// $BUILDAH_ISOLATION, else run.DefaultIsolation.
	if iso := cmp.Or(st.Isolation, os.Getenv("BUILDAH_ISOLATION")); iso != "" && !f.Changed("isolation") {
		if ro.Isolation, err = run.ParseIsolation(iso); err != nil {
			return err
		}
	}
	if st.Network != "" && !f.Changed("network") {
		if ro.Network, err = run.ParseNetwork(st.Network); err != nil {
			return err
		}
	}
	ro.CapAdd = append(slices.Clone(st.CapAdd), ro.CapAdd...)
	ro.CapDrop = append(slices.Clone(st.CapDrop), ro.CapDrop...)
	var mounts []specs.Mount
	for _, v := range st.Volumes {
		m, err := run.ParseVolume(v)
		if err != nil {
			return err
		}
		mounts = append(mounts, m)
	}
	ro.Mounts = append(mounts, ro.Mounts...)
	if st.RunSettings != nil {
		ro.Settings = *st.RunSettings
	}
	if f.Changed("no-hosts") {
		ro.Settings.NoHosts = o.NoHosts
	}
	for _, ns := range []struct {
		flag, v string
		to      *bool
	}{{"pid", o.PID, &ro.Settings.HostPID}, {"ipc", o.IPC, &ro.Settings.HostIPC}, {"uts", o.UTS, &ro.Settings.HostUTS}} {
		if f.Changed(ns.flag) {
			if *ns.to, err = run.ParseNamespace(ns.flag, ns.v); err != nil {
				return err
			}
		}
	}
	if f.Changed("cgroupns") {
		host, err := run.ParseNamespace("cgroupns", o.Cgroupns)
		if err != nil {
			return err
		}
		ro.Settings.PrivateCgroupNS = !host
	}
	for _, fl := range o.RuntimeFlags {
		ro.Settings.RuntimeArgs = append(ro.Settings.RuntimeArgs, "--"+strings.TrimLeft(fl, "-"))
	}
	return nil
}

// proxyEnv is kiln's proxy variables, which runs get as Buildah's do
// (from --http-proxy, true by default).
func proxyEnv() []string {
	var out []string
	for _, name := range []string{"http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY"} {
		if v, ok := os.LookupEnv(name); ok {
			out = append(out, name+"="+v)
		}
	}
	return out
}

// runSpec turns the flags into run options; the --mount values whose
// source is in the store (from=IMAGE, type=cache) come back apart, for
// container.ResolveMount.
func runSpec(o runOptions, f *pflag.FlagSet) (run.Options, []run.MountRequest, error) {
	ro := run.Options{User: o.User, WorkingDir: o.WorkingDir, Hostname: o.Hostname, CapAdd: o.CapAdd, CapDrop: o.CapDrop, Runtime: o.Runtime, NoPivot: o.NoPivot, Logger: logger}
	var err error
	ro.Terminal = o.TTY
	if !f.Changed("terminal") {
		// Buildah's default: a pty when kiln's stdio all are terminals.
		ro.Terminal = term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd())) && term.IsTerminal(int(os.Stderr.Fd()))
	}
	if o.UserNS != "" && o.UserNS != "host" {
		return ro, nil, usageErrorf("--userns %q: kiln runs in the host's user namespace (or, rootless, in the one it enters); other user namespaces are not supported", o.UserNS)
	}
	ro.Isolation = run.DefaultIsolation()
	if o.Isolation != "" {
		if ro.Isolation, err = run.ParseIsolation(o.Isolation); err != nil {
			return ro, nil, err
		}
	}
	if ro.Network, err = run.ParseNetwork(o.Network); err != nil {
		return ro, nil, err
	}
	for _, v := range o.Volumes {
		m, err := run.ParseVolume(v)
		if err != nil {
			return ro, nil, err
		}
		ro.Mounts = append(ro.Mounts, m)
	}
	var fromStore []run.MountRequest
	for _, v := range o.Mounts {
		req, err := run.ParseMount(v)
		if err != nil {
			return ro, nil, err
		}
		if req.Type == "bind" && req.From == "" && req.Cache == nil && (o.ContextDir != "" || !filepath.IsAbs(req.Source)) {
			// Buildah: with --contextdir, a bind's source is a path in it.
			if o.ContextDir == "" {
				return ro, nil, fmt.Errorf("--mount %q: bind source %q is not an absolute path (or give --contextdir): %w", v, req.Source, run.ErrBadMount)
			}
			req.Source = filepath.Join(o.ContextDir, filepath.Clean("/"+req.Source))
		}
		if req.From != "" || req.Cache != nil {
			fromStore = append(fromStore, req)
			continue
		}
		ro.Mounts = append(ro.Mounts, req.Mount)
	}
	return ro, fromStore, nil
}

// storeMounts resolves the --mount values whose source is in the store
// (container.ResolveMount); release undoes them all and is never nil.
func storeMounts(ctx context.Context, st *store.Store, reqs []run.MountRequest) ([]specs.Mount, func(), error) {
	var mounts []specs.Mount
	var releases []func(context.Context)
	release := func() {
		for i := len(releases) - 1; i >= 0; i-- {
			releases[i](context.WithoutCancel(ctx))
		}
	}
	for _, req := range reqs {
		m, rel, err := container.ResolveMount(ctx, st, req)
		releases = append(releases, rel)
		if err != nil {
			return nil, release, err
		}
		mounts = append(mounts, m)
	}
	return mounts, release, nil
}
