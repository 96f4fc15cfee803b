package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/run"
)

// buildOptions are build's flags, named as Buildah 1.28 names them.
type buildOptions struct {
	Files, Tags, BuildArgs, BuildArgFiles, Labels, Annotations []string
	Secrets, SSH, Volumes, BuildContexts, Outputs              []string
	CapAdd, CapDrop, SecurityOpts                              []string
	Env, Unsetenv, OSFeatures, CPPFlags, Platforms             []string
	Target, Format, Pull, IIDFile, Isolation, Network, Runtime string
	IgnoreFile, CacheTo, From, Manifest, OSVersion             string
	Logfile, RusageLogfile                                     string
	CacheFrom                                                  []string
	CacheTTL                                                   time.Duration
	Layers, NoCache, Quiet, Squash, Rm, ForceRm                bool
	PullAlways, PullNever, AllPlatforms, LogSplit, LogRusage   bool
	Stdin, IdentityLabel, OmitHistory, SkipUnusedStages        bool
	HTTPProxy, Compress, DisableCompression, ContentTrust      bool
	Jobs                                                       int
	Timestamp                                                  int64
	OS, Arch, Variant                                          string
	registryFlags
	retryFlags
	runSettingsFlags
	repro  reproFlags
	attest attestFlags
}

func addBuildFlags(f *pflag.FlagSet, o *buildOptions) {
	f.StringArrayVarP(&o.Files, "file", "f", nil, "Dockerfile or Containerfile (\"-\" reads stdin)")
	f.StringArrayVarP(&o.Tags, "tag", "t", nil, "name for the image (repeatable)")
	f.StringArrayVar(&o.BuildArgs, "build-arg", nil, "ARG=VALUE for the build")
	o.repro.add(f)
	o.attest.add(f)
	f.StringArrayVar(&o.BuildArgFiles, "build-arg-file", nil, "file of ARG=VALUE lines")
	f.StringVar(&o.Target, "target", "", "stage to build")
	f.StringVar(&o.Format, "format", envString("BUILDAH_FORMAT", "oci"), "image format: oci or docker")
	f.BoolVar(&o.Layers, "layers", envBoolOr("BUILDAH_LAYERS", true), "cache every step as a layer")
	f.BoolVar(&o.NoCache, "no-cache", false, "do not use cached steps")
	f.DurationVar(&o.CacheTTL, "cache-ttl", 0, "only use cached steps made within this duration (0: do not use the cache)")
	f.StringVar(&o.Pull, "pull", "missing", "pull policy: missing, always, never or newer")
	f.Lookup("pull").NoOptDefVal = "always"
	f.BoolVar(&o.PullAlways, "pull-always", false, "always pull base images")
	f.BoolVar(&o.PullNever, "pull-never", false, "never pull base images")
	_ = f.MarkHidden("pull-always")
	_ = f.MarkHidden("pull-never")
	f.StringVar(&o.IIDFile, "iidfile", "", "write the image ID to this file")
	f.StringArrayVar(&o.Labels, "label", nil, "add LABEL=VALUE to the image")
	f.StringArrayVar(&o.Annotations, "annotation", nil, "add ANNOTATION=VALUE to the image's manifest")
	f.BoolVar(&o.IdentityLabel, "identity-label", false, "kiln adds no builder identity label (as docker build); only false is accepted")
	f.StringArrayVar(&o.Env, "env", nil, "set ENV=VALUE (or ENV, from kiln's environment) in the image")
	f.StringArrayVar(&o.Unsetenv, "unsetenv", nil, "remove ENV from the image")
	f.BoolVar(&o.Squash, "squash", false, "squash the image into one layer")
	f.BoolVar(&o.OmitHistory, "omit-history", false, "leave the image's history empty")
	f.Int64Var(&o.Timestamp, "timestamp", 0, "set created times to this many seconds since the epoch")
	f.IntVar(&o.Jobs, "jobs", 0, "how many stages, and how many platforms of --platform, run at once (default: one per CPU)")
	f.StringVar(&o.Isolation, "isolation", os.Getenv("BUILDAH_ISOLATION"), "oci or chroot (default: oci when runc is installed and kiln is not in a container)")
	f.StringVar(&o.Runtime, "runtime", "runc", "OCI runtime for RUN")
	f.StringVar(&o.Network, "network", "host", "network for RUN: host, none or private")
	f.StringVar(&o.Network, "net", "host", "network for RUN: host, none or private")
	_ = f.MarkHidden("net")
	f.StringArrayVar(&o.Secrets, "secret", nil, "id=ID,src=FILE or id=ID,env=VAR")
	f.StringArrayVar(&o.SSH, "ssh", nil, "default (forward $SSH_AUTH_SOCK) or default=SOCKET")
	f.StringArrayVarP(&o.Volumes, "volume", "v", nil, "bind mount HOST:CONTAINER[:OPTIONS] into RUN steps")
	f.StringArrayVar(&o.BuildContexts, "build-context", nil, "name=DIR, name=URL or name=docker-image://REF (also docker://, container-image://)")
	f.StringVar(&o.IgnoreFile, "ignorefile", "", "ignore file (default: <Dockerfile>.dockerignore, .containerignore, .dockerignore)")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print only the image ID")
	f.StringArrayVarP(&o.Outputs, "output", "o", nil, "export the root filesystem: type=local,dest=DIR, type=tar,dest=FILE, DIR, or - (a tar on stdout)")
	f.BoolVar(&o.Rm, "rm", true, "remove intermediate containers after a successful build")
	f.BoolVar(&o.ForceRm, "force-rm", true, "remove intermediate containers even after a failed build (default: true, false with --layers given)")
	f.StringSliceVar(&o.CapAdd, "cap-add", nil, "add capabilities (comma-separated or repeated) to RUN steps")
	f.StringSliceVar(&o.CapDrop, "cap-drop", nil, "drop capabilities (comma-separated or repeated) from RUN steps")
	f.StringArrayVar(&o.SecurityOpts, "security-opt", nil, "for RUN steps: seccomp=unconfined|FILE, no-new-privileges, mask=, unmask=")
	o.registryFlags.add(f)
	o.retryFlags.add(f)
	f.StringArrayVar(&o.CacheFrom, "cache-from", nil, "registry repository to take cached steps from")
	f.StringVar(&o.CacheTo, "cache-to", "", "registry repository to send cached steps to")
	f.StringSliceVar(&o.Platforms, "platform", nil, "build for OS/ARCH[/VARIANT]; a comma-separated list builds each, in parallel (up to --jobs), into a manifest list (-t NAME or --manifest NAME)")
	f.StringVar(&o.OS, "os", "", "build for this OS")
	f.StringVar(&o.Arch, "arch", "", "build for this architecture")
	f.StringVar(&o.Variant, "variant", "", "build for this architecture variant")
	f.BoolVar(&o.AllPlatforms, "all-platforms", false, "build for every platform all base images are available for")
	f.StringVar(&o.Manifest, "manifest", "", "add the image to this manifest list, creating it if needed")
	f.StringVar(&o.OSVersion, "os-version", "", "set the required OS version in the image")
	f.StringSliceVar(&o.OSFeatures, "os-feature", nil, "set a required OS feature in the image (FEATURE- removes one)")
	f.StringVar(&o.From, "from", "", "image to use instead of the first stage's FROM")
	f.StringArrayVar(&o.CPPFlags, "cpp-flag", nil, "flag for the C preprocessor a Containerfile.in goes through")
	f.StringVar(&o.Logfile, "logfile", "", "write the build's output to this file instead of stdout and stderr")
	f.BoolVar(&o.LogSplit, "logsplit", false, "with --logfile and several platforms, one log file per platform (FILE_OS_ARCH)")
	f.BoolVar(&o.LogRusage, "log-rusage", false, "print each RUN step's resource usage")
	f.StringVar(&o.RusageLogfile, "rusage-logfile", "", "write the --log-rusage lines to this file")
	f.BoolVar(&o.Stdin, "stdin", false, "pass kiln's standard input to RUN steps")
	f.BoolVar(&o.SkipUnusedStages, "skip-unused-stages", true, "build only the stages the target needs")
	f.BoolVar(&o.HTTPProxy, "http-proxy", true, "pass kiln's proxy variables (http_proxy, ...) to RUN steps")
	f.BoolVar(&o.Compress, "compress", false, "no effect: the context is read in place, never sent (as in Buildah)")
	f.BoolVarP(&o.DisableCompression, "disable-compression", "D", true, "no effect: the store keeps layers uncompressed (as Buildah's does) and push compresses them")
	o.runSettingsFlags.add(f)
	f.BoolVar(&o.ContentTrust, "disable-content-trust", false, "no effect: kiln verifies no signatures on pull (as in Buildah)")
	addUnsupportedFlags(f, "sign-by", "decryption-key", "userns", "userns-uid-map", "userns-gid-map",
		"userns-uid-map-user", "userns-gid-map-group", "blob-cache")
}

// buildSpec turns the flags into build options, all but the context,
// the Dockerfile and the platform.
func buildSpec(cmd *cobra.Command, o buildOptions) (dockerfile.Options, error) {
	var bo dockerfile.Options
	var err error
	if err := o.registryFlags.check(); err != nil {
		return bo, err
	}
	if bo.Commit.Format, err = image.ParseFormat(o.Format); err != nil {
		return bo, err
	}
	if bo.Commit.Timestamp, err = timestamp(cmd, o.Timestamp); err != nil {
		return bo, err
	}
	for _, t := range o.Tags {
		if hasTransport(t) {
			continue // written there once built (buildDone)
		}
		n, err := image.NormalizeName(t)
		if bad := (*image.BadReferenceError)(nil); errors.As(err, &bad) {
			return bo, usageErrorf("tag %s: invalid reference format: %s", t, bad.Why) // Buildah's words
		}
		if err != nil {
			return bo, usageErrorf("tag %s: invalid reference format: %v", t, err)
		}
		bo.Tags = append(bo.Tags, n)
	}
	if bo.Args, err = buildArgs(o); err != nil {
		return bo, err
	}
	if err := o.repro.apply(cmd, &bo); err != nil {
		return bo, err
	}
	if err := o.attest.check(); err != nil {
		return bo, err
	}
	bo.Commit.Labels, bo.Commit.Annotations, bo.Commit.Squash = o.Labels, o.Annotations, o.Squash
	if o.IdentityLabel {
		return bo, usageErrorf("kiln build does not support --identity-label=true: kiln adds no builder identity label to images, as docker build")
	}
	for _, e := range o.Env {
		if !strings.Contains(e, "=") {
			e += "=" + os.Getenv(e)
		}
		bo.Commit.Env = append(bo.Commit.Env, e)
	}
	bo.Commit.Unsetenv, bo.Commit.OSVersion, bo.Commit.OSFeatures = o.Unsetenv, o.OSVersion, o.OSFeatures
	bo.Commit.OmitHistory = o.OmitHistory
	bo.Cache = dockerfile.CacheOptions{Layers: o.Layers, NoCache: o.NoCache}
	// Step IDs show when caching was asked for, as Buildah shows them with
	// --layers; kiln caches by default but then prints as Buildah does
	// without it.
	_, layersEnv := os.LookupEnv("BUILDAH_LAYERS")
	bo.StepIDs = o.Layers && (cmd.Flags().Changed("layers") || layersEnv)
	// So with the failed step's container: Buildah keeps it with --layers
	// unless --force-rm (so does Docker's classic builder); a build that
	// did not ask for layers leaves nothing, as BuildKit does.
	forceRm := o.ForceRm
	if !cmd.Flags().Changed("force-rm") {
		forceRm = !bo.StepIDs
	}
	bo.Commit.KeepOnFailure, bo.Commit.KeepOnSuccess = !forceRm, !o.Rm
	if len(o.Tags) > 0 {
		bo.CommitName = o.Tags[0]
	}
	if cmd.Flags().Changed("cache-ttl") {
		if o.CacheTTL <= 0 {
			logger.Debug("Setting --no-cache=true (--cache-ttl is 0)")
			bo.Cache.NoCache = true
		} else {
			bo.Cache.TTL = o.CacheTTL
		}
	}
	bo.Target, bo.Jobs, bo.Logger = o.Target, o.Jobs, logger
	bo.AllStages, bo.From = !o.SkipUnusedStages, o.From
	if bo.Contexts, err = keyValues(o.BuildContexts, "--build-context"); err != nil {
		return bo, err
	}
	bo.Run, err = buildRunOptions(cmd, o)
	return bo, err
}

func buildRunOptions(cmd *cobra.Command, o buildOptions) (dockerfile.RunOptions, error) {
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
	if ro.Settings, err = o.runSettingsFlags.settings(cmd.Flags(), ro.Network); err != nil {
		return ro, err
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
	if o.Stdin {
		ro.Stdin = cmd.InOrStdin()
	}
	if o.HTTPProxy {
		for _, k := range []string{"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ftp_proxy", "FTP_PROXY", "no_proxy", "NO_PROXY"} {
			if v, ok := os.LookupEnv(k); ok {
				ro.HostProxy = append(ro.HostProxy, k+"="+v)
			}
		}
	}
	return ro, nil
}

// buildPlatforms are the platforms to build for: --platform's list (each
// OS/ARCH[/VARIANT], "" fields this machine's), else --os, --arch and
// --variant; one zero platform when none is given.
func buildPlatforms(o buildOptions) ([]ocispec.Platform, error) {
	if len(o.Platforms) == 0 {
		return []ocispec.Platform{{OS: o.OS, Architecture: o.Arch, Variant: o.Variant}}, nil
	}
	var out []ocispec.Platform
	for _, s := range o.Platforms {
		parts := strings.Split(s, "/")
		if len(parts) > 3 || len(parts) < 2 {
			return nil, usageErrorf("invalid platform %q: want OS/ARCH[/VARIANT]", s)
		}
		p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
		if p.OS == "" {
			p.OS = runtime.GOOS
		}
		if p.Architecture == "" {
			p.Architecture = runtime.GOARCH
		}
		if len(parts) == 3 {
			p.Variant = parts[2]
		}
		if o.OS != "" {
			p.OS = o.OS
		}
		if o.Arch != "" {
			p.Architecture = o.Arch
		}
		if o.Variant != "" {
			p.Variant = o.Variant
		}
		out = append(out, p)
	}
	return out, nil
}

// platformString is OS/ARCH[/VARIANT], this machine's fields filled in.
func platformString(p ocispec.Platform) string {
	if p.OS == "" {
		p.OS = runtime.GOOS
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// outputSpec is one --output: a directory or a tar file ("-": stdout).
type outputSpec struct {
	tar  bool
	dest string
}

// parseOutput parses --output as Buildah does: type=local,dest=DIR,
// type=tar,dest=FILE, a bare DIR, or "-" for a tar on stdout.
func parseOutput(spec string) (outputSpec, error) {
	if spec == "-" {
		return outputSpec{tar: true, dest: "-"}, nil
	}
	if spec != "" && !strings.Contains(spec, "=") && !strings.Contains(spec, ",") {
		return outputSpec{dest: spec}, nil
	}
	var typ, dest string
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return outputSpec{}, usageErrorf("invalid --output %q: %q is not KEY=VALUE", spec, kv)
		case k == "type":
			typ = v
		case k == "dest":
			dest = v
		default:
			return outputSpec{}, usageErrorf("invalid --output %q: unknown key %q", spec, k)
		}
	}
	switch {
	case typ != "local" && typ != "tar":
		return outputSpec{}, usageErrorf("invalid --output %q: type must be local or tar", spec)
	case dest == "":
		return outputSpec{}, usageErrorf("invalid --output %q: dest is missing", spec)
	case dest == "-" && typ == "local":
		return outputSpec{}, usageErrorf("invalid --output %q: a local output needs a directory, not -", spec)
	}
	return outputSpec{tar: typ == "tar", dest: dest}, nil
}

// logfileFor is --logfile's name for one platform of several with
// --logsplit: FILE_OS_ARCH, as Buildah names it.
func logfileFor(o buildOptions, p ocispec.Platform, multi bool) string {
	if !multi || !o.LogSplit {
		return o.Logfile
	}
	plat := strings.Split(platformString(p), "/")
	return fmt.Sprintf("%s_%s_%s", o.Logfile, plat[0], plat[1])
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
