package dockerfile

import (
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// proxyArgs are usable without an ARG line and never persisted in the
// image or its history, as in Docker.
var proxyArgs = []string{
	"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
	"FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
}

// platformArgs are BuildKit's automatic platform args, in global scope.
func platformArgs() map[string]string {
	p := "linux/" + runtime.GOARCH
	return map[string]string{
		"TARGETPLATFORM": p, "TARGETOS": "linux", "TARGETARCH": runtime.GOARCH, "TARGETVARIANT": "",
		"BUILDPLATFORM": p, "BUILDOS": "linux", "BUILDARCH": runtime.GOARCH, "BUILDVARIANT": "",
	}
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
		if !u.used[k] && !slices.Contains(proxyArgs, k) {
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
func globalArgs(df *dockerfile, args map[string]string, u *usage) (*argSet, error) {
	g := newArgSet()
	for k, v := range platformArgs() {
		g.set(k, v)
	}
	lex := df.lexer()
	for _, a := range df.metaArgs {
		for _, kv := range a.Args {
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
