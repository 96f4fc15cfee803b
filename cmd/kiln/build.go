package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/run"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// The registry build cache is the builder's remote cache.
var _ dockerfile.RemoteCache = (*images.RegistryCache)(nil)

type buildOptions struct {
	Files, Tags, BuildArgs, BuildArgFiles, Labels, Annotations []string
	Secrets, SSH, Volumes, BuildContexts, Outputs              []string
	CapAdd, CapDrop, SecurityOpts                              []string
	Target, Format, Pull, IIDFile, Isolation, Network, Runtime string
	IgnoreFile, CacheTo                                        string
	CacheFrom                                                  []string
	Layers, NoCache, Quiet, Squash, Rm, ForceRm                bool
	PullAlways, PullNever                                      bool
	Jobs                                                       int
	Timestamp                                                  int64
	registryFlags
	platformFlags
}

func init() {
	register(newBuildCommand)
}

func newBuildCommand() *cobra.Command {
	var o buildOptions
	cmd := &cobra.Command{
		Use:     "build [options] [CONTEXT]",
		Aliases: []string{"bud", "build-using-dockerfile"},
		Short:   "Build an image from a Dockerfile or Containerfile",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.Files, "file", "f", nil, "Dockerfile or Containerfile (\"-\" reads stdin)")
	f.StringArrayVarP(&o.Tags, "tag", "t", nil, "name for the image (repeatable)")
	f.StringArrayVar(&o.BuildArgs, "build-arg", nil, "ARG=VALUE for the build")
	f.StringArrayVar(&o.BuildArgFiles, "build-arg-file", nil, "file of ARG=VALUE lines")
	f.StringVar(&o.Target, "target", "", "stage to build")
	f.StringVar(&o.Format, "format", "oci", "image format: oci or docker")
	f.BoolVar(&o.Layers, "layers", envBool("BUILDAH_LAYERS", true), "cache every step as a layer")
	f.BoolVar(&o.NoCache, "no-cache", false, "do not use cached steps")
	f.StringVar(&o.Pull, "pull", "missing", "pull policy: missing, always, never or newer")
	f.Lookup("pull").NoOptDefVal = "always"
	f.BoolVar(&o.PullAlways, "pull-always", false, "always pull base images")
	f.BoolVar(&o.PullNever, "pull-never", false, "never pull base images")
	f.StringVar(&o.IIDFile, "iidfile", "", "write the image ID to this file")
	f.StringArrayVar(&o.Labels, "label", nil, "add LABEL=VALUE to the image")
	f.StringArrayVar(&o.Annotations, "annotation", nil, "add ANNOTATION=VALUE to the image's manifest")
	f.BoolVar(&o.Squash, "squash", false, "squash the image into one layer")
	f.Int64Var(&o.Timestamp, "timestamp", 0, "set created times to this many seconds since the epoch")
	f.IntVar(&o.Jobs, "jobs", 0, "how many stages run at once (default: one per CPU)")
	f.StringVar(&o.Isolation, "isolation", "", "oci or chroot (default: oci when runc is installed and kiln is not in a container)")
	f.StringVar(&o.Runtime, "runtime", "runc", "OCI runtime for RUN")
	f.StringVar(&o.Network, "network", "host", "network for RUN: host, none or private")
	f.StringArrayVar(&o.Secrets, "secret", nil, "id=ID,src=FILE or id=ID,env=VAR")
	f.StringArrayVar(&o.SSH, "ssh", nil, "default (forward $SSH_AUTH_SOCK) or default=SOCKET")
	f.StringArrayVarP(&o.Volumes, "volume", "v", nil, "bind mount HOST:CONTAINER[:OPTIONS] into RUN steps")
	f.StringArrayVar(&o.BuildContexts, "build-context", nil, "name=DIR or name=docker-image://REF")
	f.StringVar(&o.IgnoreFile, "ignorefile", "", "ignore file (default: <Dockerfile>.dockerignore, .containerignore, .dockerignore)")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print only the image ID")
	f.StringArrayVarP(&o.Outputs, "output", "o", nil, "type=local,dest=DIR or type=tar,dest=FILE")
	f.BoolVar(&o.Rm, "rm", true, "remove intermediate containers after a successful build")
	f.BoolVar(&o.ForceRm, "force-rm", true, "remove intermediate containers even after a failed build")
	f.StringArrayVar(&o.CapAdd, "cap-add", nil, "add a capability to RUN steps")
	f.StringArrayVar(&o.CapDrop, "cap-drop", nil, "drop a capability from RUN steps")
	f.StringArrayVar(&o.SecurityOpts, "security-opt", nil, "for RUN steps: seccomp=unconfined|FILE, no-new-privileges, mask=, unmask=")
	o.registryFlags.add(f)
	f.StringArrayVar(&o.CacheFrom, "cache-from", nil, "registry repository to take cached steps from")
	f.StringVar(&o.CacheTo, "cache-to", "", "registry repository to send cached steps to")
	addIgnoredFlags(f, "platform", "arch", "os", "variant", "cache-ttl", "compress", "disable-compression",
		"dns", "dns-option", "dns-search", "http-proxy", "identity-label", "logfile", "memory", "memory-swap", "shm-size", "ulimit",
		"userns", "cgroup-parent", "cpu-period", "cpu-quota", "cpu-shares", "cpuset-cpus", "cpuset-mems", "device",
		"sign-by", "omit-history", "retry", "retry-delay", "stdin", "unsetenv", "ipc", "pid", "uts", "cgroupns", "no-hostname", "no-hosts",
		"manifest", "rewrite-timestamp", "source-date-epoch", "env", "add-host", "decryption-key", "logsplit", "skip-unused-stages")
	return cmd
}

func runBuild(cmd *cobra.Command, o buildOptions, args []string) error {
	// Ctrl-C or SIGTERM stops the build cleanly: its containers and
	// mounts are removed before kiln exits.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bo, err := buildSpec(cmd, o)
	if err != nil {
		return err
	}
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	spec := "."
	if len(args) == 1 {
		spec = args[0]
	}
	src, err := dockerfile.OpenSource(ctx, spec, cmd.InOrStdin(), st.RunRoot())
	if err != nil {
		return err
	}
	defer src.Close()
	bo.ContextDir = src.Dir
	dfPath, err := readDockerfile(cmd, o, src, &bo)
	if err != nil {
		return err
	}
	if bo.Ignore, err = dockerfile.ReadIgnore(o.IgnoreFile, dfPath, src.Dir); err != nil {
		return err
	}
	policy, err := buildPullPolicy(o)
	if err != nil {
		return err
	}
	p, err := buildPlatform(o)
	if err != nil {
		return err
	}
	eo := images.EnsureOptions{Policy: policy, Pull: newPullOptions(o.registryFlags, retryFlags{}, p), Logger: logger}
	bo.Resolve = func(ctx context.Context, ref string) (store.Image, error) {
		prog := newCopyProgress(cmd.ErrOrStderr(), o.Quiet)
		defer prog.finish()
		eo := eo
		eo.Pull.Progress = prog.progress()
		return images.Ensure(ctx, st, ref, eo)
	}
	if !o.Quiet {
		bo.Out = cmd.OutOrStdout()
	}
	rc, err := images.NewRegistryCache(st, images.RegistryCacheOptions{From: o.CacheFrom, To: o.CacheTo, System: o.registryFlags.systemContext(), Logger: logger})
	if err != nil {
		return err
	}
	if rc != nil {
		bo.Remote = rc
	}
	res, err := dockerfile.Build(ctx, st, bo)
	if ctx.Err() != nil && cmd.Context().Err() == nil {
		return &exitError{code: 130, err: fmt.Errorf("build interrupted: %w", err)}
	}
	var ee *dockerfile.ExitError
	if errors.As(err, &ee) {
		return &exitError{code: ee.Code, err: err}
	}
	if err != nil {
		return err
	}
	return buildDone(cmd, o, st, bo, res)
}

// buildDone tags, writes --iidfile and --output, and prints the ID.
func buildDone(cmd *cobra.Command, o buildOptions, st *store.Store, bo dockerfile.Options, res dockerfile.Result) error {
	out := cmd.OutOrStdout()
	if !o.Quiet {
		for _, t := range bo.Tags {
			fmt.Fprintf(out, "Successfully tagged %s\n", t)
		}
	}
	fmt.Fprintln(out, res.ImageID)
	if o.IIDFile != "" {
		if err := os.WriteFile(o.IIDFile, []byte("sha256:"+res.ImageID), 0o644); err != nil {
			return err
		}
	}
	for _, spec := range o.Outputs {
		if err := writeOutput(cmd, st, res.ImageID, spec); err != nil {
			return err
		}
	}
	return nil
}

// buildSpec turns the flags into build options.
func buildSpec(cmd *cobra.Command, o buildOptions) (dockerfile.Options, error) {
	var bo dockerfile.Options
	var err error
	if bo.Commit.Format, err = image.ParseFormat(o.Format); err != nil {
		return bo, err
	}
	if bo.Commit.Timestamp, err = timestamp(cmd, o.Timestamp); err != nil {
		return bo, err
	}
	for _, t := range o.Tags {
		n, err := image.NormalizeName(t)
		if err != nil {
			return bo, err
		}
		bo.Tags = append(bo.Tags, n)
	}
	if bo.Args, err = buildArgs(o); err != nil {
		return bo, err
	}
	bo.Commit.Labels, bo.Commit.Annotations, bo.Commit.Squash = o.Labels, o.Annotations, o.Squash
	bo.Commit.KeepOnFailure, bo.Commit.KeepOnSuccess = !o.ForceRm, !o.Rm
	bo.Cache = dockerfile.CacheOptions{Layers: o.Layers, NoCache: o.NoCache}
	bo.Target, bo.Jobs, bo.Logger = o.Target, o.Jobs, logger
	if bo.Contexts, err = keyValues(o.BuildContexts, "--build-context"); err != nil {
		return bo, err
	}
	bo.Run, err = buildRunOptions(o)
	return bo, err
}

func buildRunOptions(o buildOptions) (dockerfile.RunOptions, error) {
	ro := dockerfile.RunOptions{Runtime: o.Runtime, CapAdd: o.CapAdd, CapDrop: o.CapDrop, Isolation: run.DefaultIsolation()}
	var err error
	if o.Isolation != "" {
		if ro.Isolation, err = run.ParseIsolation(o.Isolation); err != nil {
			return ro, usageErrorf("%v", err)
		}
	}
	if ro.Network, err = run.ParseNetwork(o.Network); err != nil {
		return ro, usageErrorf("%v", err)
	}
	if ro.Security, err = run.ParseSecurityOpts(o.SecurityOpts); err != nil {
		return ro, err
	}
	for _, v := range o.Volumes {
		m, err := run.ParseVolume(v)
		if err != nil {
			return ro, err
		}
		ro.Mounts = append(ro.Mounts, m)
	}
	if ro.Secrets, err = parseSecrets(o.Secrets); err != nil {
		return ro, err
	}
	for _, s := range o.SSH {
		id, sock, _ := strings.Cut(s, "=")
		if id != "default" {
			return ro, usageErrorf("--ssh %q: only the default agent is supported", s)
		}
		if sock == "" {
			sock = os.Getenv("SSH_AUTH_SOCK")
		}
		if sock == "" {
			return ro, usageErrorf("--ssh default: SSH_AUTH_SOCK is not set")
		}
		ro.SSHAuthSock = sock
	}
	return ro, nil
}

func parseSecrets(specs []string) (map[string]dockerfile.Secret, error) {
	out := map[string]dockerfile.Secret{}
	for _, spec := range specs {
		var id string
		var s dockerfile.Secret
		for _, kv := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "id":
				id = v
			case "src", "source":
				s.Src = v
			case "env":
				s.Env = v
			case "type":
			default:
				return nil, usageErrorf("--secret %q: unknown key %q (use id, src, env)", spec, k)
			}
		}
		if id == "" {
			id = filepath.Base(s.Src + s.Env)
		}
		if s.Src == "" && s.Env == "" {
			return nil, usageErrorf("--secret %q: give src=FILE or env=VAR", spec)
		}
		out[id] = s
	}
	return out, nil
}

func buildArgs(o buildOptions) (map[string]string, error) {
	args := map[string]string{}
	var lines []string
	for _, f := range o.BuildArgFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
	}
	for _, a := range append(lines, o.BuildArgs...) {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			val, set := os.LookupEnv(k)
			if !set {
				continue
			}
			v = val
		}
		args[k] = v
	}
	return args, nil
}

func keyValues(list []string, flag string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, usageErrorf("%s %q: want NAME=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

func buildPullPolicy(o buildOptions) (images.PullPolicy, error) {
	switch {
	case o.PullAlways:
		return images.PullAlways, nil
	case o.PullNever:
		return images.PullNever, nil
	}
	return images.ParsePullPolicy(o.Pull)
}

func envBool(name string, def bool) bool {
	switch strings.ToLower(os.Getenv(name)) {
	case "1", "true", "yes":
		return true
	case "0", "false", "no":
		return false
	}
	return def
}

// buildPlatform accepts --platform (and --os/--arch/--variant) naming
// this machine's platform: kiln builds without emulation.
func buildPlatform(o buildOptions) (transport.Platform, error) {
	p, err := o.platformFlags.platform()
	if err != nil {
		return p, err
	}
	if (p.OS != "" && p.OS != "linux") || (p.Architecture != "" && p.Architecture != runtime.GOARCH) {
		return p, usageErrorf("platform %s/%s needs emulation, which kiln does not do: build on a %s/%s machine or leave --platform out",
			p.OS, p.Architecture, "linux", runtime.GOARCH)
	}
	return p, nil
}
