package dockerfile

import (
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// proxyArgs are usable without an ARG line and never persisted in the
// image or its history, as in Docker.
var proxyArgs = []string{
	"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
	"FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
}

// platformArgs are BuildKit's automatic platform args, in global scope:
// TARGET* name the platform built for, BUILD* this machine.
func platformArgs(target ocispec.Platform) map[string]string {
	target = normalPlatform(target)
	build := normalPlatform(ocispec.Platform{})
	return map[string]string{
		"TARGETPLATFORM": platformText(target), "TARGETOS": target.OS, "TARGETARCH": target.Architecture, "TARGETVARIANT": target.Variant,
		"BUILDPLATFORM": platformText(build), "BUILDOS": build.OS, "BUILDARCH": build.Architecture, "BUILDVARIANT": build.Variant,
	}
}

// normalPlatform fills the fields p leaves empty with this machine's.
func normalPlatform(p ocispec.Platform) ocispec.Platform {
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
		if p.Variant == "" && runtime.GOARCH == "arm64" {
			p.Variant = "v8"
		}
	}
	return p
}

// platformText is OS/ARCH[/VARIANT].
func platformText(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// parsePlatform parses OS/ARCH[/VARIANT] (FROM --platform).
func parsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, fmt.Errorf("bad platform %q: want OS/ARCH[/VARIANT]", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// argSet is an ordered set of ARG values in scope.
type argSet struct {
	keys   []string
	values map[string]string
}

func newArgSet() *argSet { return &argSet{values: map[string]string{}} }

func (a *argSet) set(k, v string) {
	if _, ok := a.values[k]; !ok {
		a.keys = append(a.keys, k)
	}
	a.values[k] = v
}

func (a *argSet) clone() *argSet {
	c := newArgSet()
	for _, k := range a.keys {
		c.set(k, a.values[k])
	}
	return c
}

// usage records which --build-arg values some ARG consumed.
type usage struct {
	mu   sync.Mutex
	used map[string]bool
}

func (u *usage) mark(k string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.used == nil {
		u.used = map[string]bool{}
	}
	u.used[k] = true
}

// unused lists the build args nothing declared, sorted.
func (u *usage) unused(args map[string]string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for k := range args {
		// SOURCE_DATE_EPOCH is set by every build with an epoch, used or not.
		if !u.used[k] && !slices.Contains(proxyArgs, k) && k != "SOURCE_DATE_EPOCH" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// envGetter lets BuildKit's lexer see ARGs and ENV, ENV winning.
type envGetter struct {
	args *argSet
	env  []string
}

func (g envGetter) Get(k string) (string, bool) {
	for i := len(g.env) - 1; i >= 0; i-- {
		if name, v, ok := strings.Cut(g.env[i], "="); ok && name == k {
			return v, true
		}
	}
	v, ok := g.args.values[k]
	return v, ok
}

func (g envGetter) Keys() []string {
	keys := append([]string{}, g.args.keys...)
	for _, kv := range g.env {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	return keys
}

var _ shell.EnvGetter = envGetter{}

// globalArgs evaluates the ARGs before the first FROM: each gets its
// --build-arg value, else its default expanded with the ones before.
func globalArgs(df *dockerfile, target ocispec.Platform, args map[string]string, u *usage) (*argSet, error) {
	g := newArgSet()
	pa := platformArgs(target)
	keys := make([]string, 0, len(pa))
	for k := range pa {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v, ok := args[k]; ok {
			u.mark(k)
			g.set(k, v)
			continue
		}
		g.set(k, pa[k])
	}
	lex := df.lexer()
	for _, a := range df.metaArgs {
		for _, kv := range a.Args {
			if _, auto := pa[kv.Key]; auto {
				// "ARG TARGETARCH" only declares an automatic arg: it keeps
				// its value (or --build-arg's), and a default is only a
				// fallback for an arg that is unset, which these never are,
				// as in current BuildKit (docker/buildx#4013). Buildah 1.28
				// needs the line to expand TARGETARCH in FROM.
				continue
			}
			v, err := argValue(lex, kv, g, nil, args, u)
			if err != nil {
				return nil, err
			}
			g.set(kv.Key, v)
		}
	}
	return g, nil
}

// argValue is an ARG's value: the build arg, else the default expanded
// in scope, else the global value (for an ARG redeclared in a stage).
func argValue(lex *shell.Lex, kv instructions.KeyValuePairOptional, scope, global *argSet, args map[string]string, u *usage) (string, error) {
	if v, ok := args[kv.Key]; ok {
		u.mark(kv.Key)
		return v, nil
	}
	if kv.Value != nil {
		v, err := expandWord(lex, *kv.Value, envGetter{args: scope})
		return v, err
	}
	if global != nil {
		if v, ok := global.values[kv.Key]; ok {
			return v, nil
		}
	}
	return "", nil
}

// fromArgs are the args stage s's FROM line expands with: the global ones
// and, as Buildah has them, a --build-arg value for an ARG an earlier
// stage declares ("FROM platform-${TARGET}" after a stage with "ARG
// TARGET"). Docker knows only the global ones there, and expands such a
// name to an invalid reference, so no Dockerfile Docker builds changes.
func fromArgs(df *dockerfile, s *stage, global *argSet, args map[string]string) *argSet {
	out := global
	for _, t := range df.stages[:s.index] {
		for _, c := range t.commands {
			a, ok := c.(*instructions.ArgCommand)
			if !ok {
				continue
			}
			for _, kv := range a.Args {
				v, given := args[kv.Key]
				if _, known := out.values[kv.Key]; known || !given {
					continue
				}
				if out == global {
					out = global.clone()
				}
				out.set(kv.Key, v)
			}
		}
	}
	return out
}

// warnUnsetArgs warns, in Buildah's words, of each ARG that has no
// default, no earlier value and no --build-arg: a RUN sees it empty.
func warnUnsetArgs(df *dockerfile, args map[string]string, logger *slog.Logger) {
	if logger == nil {
		return
	}
	valued := map[string]bool{}
	for k := range platformArgs(ocispec.Platform{}) {
		valued[k] = true // always set
	}
	check := func(a *instructions.ArgCommand) {
		for _, kv := range a.Args {
			if kv.Value != nil && *kv.Value != "" {
				valued[kv.Key] = true
			}
			if _, given := args[kv.Key]; !given && !valued[kv.Key] {
				logger.Warn(fmt.Sprintf("missing %q build argument. Try adding %q to the command line", kv.Key, "--build-arg "+kv.Key+"=<VALUE>"))
			}
		}
	}
	for i := range df.metaArgs {
		check(&df.metaArgs[i])
	}
	for _, s := range df.stages {
		for _, c := range s.commands {
			if a, ok := c.(*instructions.ArgCommand); ok {
				check(a)
			}
		}
	}
}
