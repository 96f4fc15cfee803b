package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/internal/idmap"
	"github.com/kiln-build/kiln/internal/transport"
)

// registryFlags are the per-verb flags of every verb that may talk to a
// registry or the Docker daemon, named as Buildah names them.
type registryFlags struct {
	// TLSVerify is unset unless --tls-verify is given; unset follows
	// registries.conf (insecure = true), else verifies.
	TLSVerify       optionalBool
	Creds           string
	CertDir         string
	AuthFile        string
	DaemonHost      string
	SignaturePolicy string
	RegistriesDir   string
}

func (r *registryFlags) add(f *pflag.FlagSet) {
	r.addPrefixed(f, "")
	f.StringVar(&r.SignaturePolicy, "signature-policy", "", "signature policy file images must meet (default /etc/containers/policy.json)")
	f.StringVar(&r.RegistriesDir, "registries.d", "", "directory of registries.d files that say where signatures are stored (default /etc/containers/registries.d)")
}

// check refuses what Buildah refuses before it does anything: an
// --authfile that does not exist.
func (r registryFlags) check() error {
	if _, err := transport.ParseRegistrySources(os.Getenv("BUILD_REGISTRY_SOURCES")); err != nil {
		return fmt.Errorf("$BUILD_REGISTRY_SOURCES: %w", err)
	}
	if r.AuthFile == "" {
		return nil
	}
	if _, err := os.Stat(r.AuthFile); err != nil {
		return fmt.Errorf("checking authfile: %w", err)
	}
	return nil
}

// addPrefixed adds the flags named with a prefix, as `image copy` has
// them for each side ("src-", "dest-").
func (r *registryFlags) addPrefixed(f *pflag.FlagSet, prefix string) {
	side := ""
	if prefix != "" {
		side = " (" + strings.TrimSuffix(prefix, "-") + ")"
	}
	f.Var(&r.TLSVerify, prefix+"tls-verify", "require HTTPS and verify certificates when talking to registries"+side+" (default true)")
	f.Lookup(prefix + "tls-verify").NoOptDefVal = "true"
	f.StringVar(&r.Creds, prefix+"creds", "", "registry credentials as USERNAME[:PASSWORD]"+side)
	f.StringVar(&r.CertDir, prefix+"cert-dir", "", "directory of certificates for the registry"+side)
	f.StringVar(&r.AuthFile, prefix+"authfile", "", "path of the authentication file"+side)
	f.StringVar(&r.DaemonHost, prefix+"daemon-host", "", "Docker daemon address for docker-daemon:"+side+" (default $DOCKER_HOST)")
}

// systemContext turns the registry flags into the transport's settings.
// The environment is read here, never in the library: DOCKER_HOST and the
// credential-file variables.
func (r registryFlags) systemContext() *transport.SystemContext {
	sys := &transport.SystemContext{
		AuthFile: r.AuthFile, Creds: r.Creds, CertDir: r.CertDir, DaemonHost: r.DaemonHost,
		RegistriesConf: globals.RegistriesConf, RegistriesConfDir: globals.RegistriesConfDir,
		ShortNameAliasConf: globals.ShortNameAliasConf, Logger: logger, Env: os.Getenv,
		RegistriesDir: r.RegistriesDir, Rootless: idmap.Rootless(),
	}
	if sys.DaemonHost == "" {
		sys.DaemonHost = os.Getenv("DOCKER_HOST")
	}
	// Buildah's limit on the registries images come from and go to; a
	// malformed value is reported by check.
	sys.Sources, _ = transport.ParseRegistrySources(os.Getenv("BUILD_REGISTRY_SOURCES"))
	if r.TLSVerify.set {
		v := r.TLSVerify.value
		sys.TLSVerify = &v
	}
	return sys
}

// optionalBool is a boolean flag that remembers whether it was given.
type optionalBool struct{ set, value bool }

func (b *optionalBool) String() string {
	if !b.set {
		return ""
	}
	return strconv.FormatBool(b.value)
}

func (b *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false, not %q", s)
	}
	b.set, b.value = true, v
	return nil
}

func (b *optionalBool) Type() string     { return "bool" }
func (b *optionalBool) IsBoolFlag() bool { return true }

// retryFlags are Buildah's --retry and --retry-delay.
type retryFlags struct {
	Retry      int
	RetryDelay time.Duration
}

func (r *retryFlags) add(f *pflag.FlagSet) {
	f.IntVar(&r.Retry, "retry", 3, "number of times to retry a failed pull or push")
	f.DurationVar(&r.RetryDelay, "retry-delay", 2*time.Second, "delay before the first retry, doubled each time")
}

// apply sets the retry settings of a copy and of its system context; the
// zero retryFlags keeps the library's defaults.
func (r retryFlags) apply(sys *transport.SystemContext, c *transport.CopyOptions) {
	if r == (retryFlags{}) {
		return
	}
	n := r.Retry
	if n <= 0 {
		n = -1 // zero means the default to the library; the user meant none
	}
	sys.Retry, sys.RetryDelay = n, r.RetryDelay
	c.Retry, c.RetryDelay = n, r.RetryDelay
}

// platformFlags select the image of a manifest list: --platform
// OS/ARCH[/VARIANT], or --os, --arch and --variant.
type platformFlags struct {
	Platform, OS, Arch, Variant string
}

func (p *platformFlags) add(f *pflag.FlagSet) {
	f.StringVar(&p.Platform, "platform", "", "pick the image for OS/ARCH[/VARIANT] from a manifest list")
	f.StringVar(&p.OS, "os", "", "pick the image for this OS from a manifest list")
	f.StringVar(&p.Arch, "arch", "", "pick the image for this architecture from a manifest list")
	f.StringVar(&p.Variant, "variant", "", "pick the image for this architecture variant from a manifest list")
}

// platform returns the platform asked for; empty fields mean this machine.
func (p platformFlags) platform() (transport.Platform, error) {
	out := transport.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant}
	if p.Platform == "" {
		return out, nil
	}
	parsed, err := parsePlatform(p.Platform)
	if err != nil {
		return out, err
	}
	if out.OS == "" {
		out.OS = parsed.OS
	}
	if out.Architecture == "" {
		out.Architecture = parsed.Architecture
	}
	if out.Variant == "" {
		out.Variant = parsed.Variant
	}
	return out, nil
}

// parsePlatform parses OS/ARCH[/VARIANT].
func parsePlatform(s string) (transport.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return transport.Platform{}, usageErrorf("bad platform %q: want OS/ARCH[/VARIANT], such as linux/arm64/v8", s)
	}
	p := transport.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// refusedFlag is a flag Buildah has and kiln does not implement: giving
// it is an error naming it (exit 125), never a value silently dropped. A
// boolean one may be given as false, its default.
type refusedFlag struct {
	reason string
	isBool bool
}

func (r refusedFlag) String() string { return "" }
func (r refusedFlag) Type() string {
	if r.isBool {
		return "bool"
	}
	return "string"
}

func (r refusedFlag) Set(v string) error {
	if r.isBool && v == "false" {
		return nil
	}
	return errors.New("not supported by kiln: " + r.reason)
}

// refusedFlags are the flags of Buildah's verbs kiln refuses, by name,
// with the reason given to whoever passes one.
var refusedFlags = map[string]string{
	"encryption-key":          "encrypted images are not supported",
	"decryption-key":          "encrypted images are not supported",
	"encrypt-layer":           "encrypted images are not supported",
	"dest-decompress":         "decompressing layers on the way is not implemented",
	"dest-precompute-digests": "kiln always computes digests before it writes",
	"preserve-digests":        "kiln keeps the source's blobs unless a compression is asked for; it cannot promise digests otherwise",
	"image-parallel-copies":   "kiln chooses how many blobs it copies at once",
	"checksum":                "checking a source's digest is not implemented",
	"add-compression":         "images with several compressions per layer are not supported",
	"rm":                      "removing a manifest list after pushing it is not implemented: run manifest rm after it",
	"certs-dir":               "use --cert-dir",
	"add-history":             "history entries for config changes are not implemented",
	"force-compression":       "manifest push sends each image's blobs as stored; push an image alone with --force-compression",
	"annotation":              "set a list's annotations with manifest annotate",
	"cni-config-dir":          "kiln has no CNI networks (its networks are host, none and private)",
	"cni-plugin-path":         "kiln has no CNI networks (its networks are host, none and private)",
	"sign-by":                 "a build does not sign: sign when pushing (kiln push --sign-by), whose manifest is the one signed",
	"userns":                  "builds run in the user namespace kiln runs in",
	"userns-uid-map":          "builds run in the user namespace kiln runs in",
	"userns-gid-map":          "builds run in the user namespace kiln runs in",
	"userns-uid-map-user":     "builds run in the user namespace kiln runs in",
	"userns-gid-map-group":    "builds run in the user namespace kiln runs in",
	"blob-cache":              "kiln keeps no separate blob cache",
}

// addUnsupportedFlags adds the named Buildah flags (keys of refusedFlags,
// booleans marked with a "!" suffix) as hidden flags that fail when given.
func addUnsupportedFlags(f *pflag.FlagSet, names ...string) {
	for _, n := range names {
		isBool := strings.HasSuffix(n, "!")
		n = strings.TrimSuffix(n, "!")
		if f.Lookup(n) != nil {
			continue
		}
		reason, ok := refusedFlags[n]
		if !ok {
			panic("addUnsupportedFlags: no reason for --" + n)
		}
		f.Var(refusedFlag{reason: reason, isBool: isBool}, n, "not supported: "+reason)
		if isBool {
			f.Lookup(n).NoOptDefVal = "true"
		}
		_ = f.MarkHidden(n)
	}
}

// buildahAliases reads the old names Buildah still accepts for some
// flags (--net, --override-arch, ...) as the flags they became.
func buildahAliases(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	switch name {
	case "net":
		name = "network"
	case "override-arch":
		name = "arch"
	case "override-os":
		name = "os"
	case "purge":
		name = "rm"
	case "tty":
		name = "terminal"
	}
	return pflag.NormalizedName(name)
}

// optionsFirst makes cmd take its options before its first argument
// only, as Buildah's verbs do: an option after it is refused with
// Buildah's message (exit 125) instead of being read as an option or
// passed on as a name. Its Args check runs after this one.
func optionsFirst(cmd *cobra.Command) *cobra.Command {
	cmd.Flags().SetInterspersed(false)
	inner := cmd.Args
	cmd.Args = func(c *cobra.Command, args []string) error {
		for _, a := range args {
			if strings.HasPrefix(a, "-") {
				return fmt.Errorf("no options (%s) can be specified after the image or container name", a)
			}
		}
		if inner != nil {
			return inner(c, args)
		}
		return nil
	}
	return cmd
}

// exactArgs is cobra.ExactArgs with an error that names what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s needs %s (got %d arguments)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs with an error that names what is missing.
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%s needs %s", cmd.CommandPath(), what)
		}
		return nil
	}
}
