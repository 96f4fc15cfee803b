package transport

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/kiln-build/kiln/internal/image"
)

// Default locations of registries.conf.
const (
	DefaultRegistriesConf    = "/etc/containers/registries.conf"
	DefaultRegistriesConfDir = "/etc/containers/registries.conf.d"
)

// RegistriesConf is registries.conf (version 2), merged from the main file,
// the drop-in directory and the short-name alias file. A file in the
// version 1 form ([registries.search], [registries.insecure],
// [registries.block]) is read as the version 2 tables it stands for.
type RegistriesConf struct {
	UnqualifiedSearchRegistries []string          `toml:"unqualified-search-registries"`
	ShortNameMode               string            `toml:"short-name-mode"`
	Aliases                     map[string]string `toml:"aliases"`
	Registries                  []RegistryConf    `toml:"registry"`
	V1                          registriesV1      `toml:"registries"`
}

// registriesV1 is registries.conf version 1: lists of registry hosts.
type registriesV1 struct {
	Search   struct{ Registries []string } `toml:"search"`
	Insecure struct{ Registries []string } `toml:"insecure"`
	Block    struct{ Registries []string } `toml:"block"`
}

// fromV1 turns the version 1 lists into version 2 settings: the search
// list is the unqualified-search registries, each insecure or blocked
// host a [[registry]] of its own.
func (c *RegistriesConf) fromV1() {
	v := c.V1
	if len(v.Search.Registries) > 0 && c.UnqualifiedSearchRegistries == nil {
		c.UnqualifiedSearchRegistries = v.Search.Registries
	}
	entry := func(host string) *RegistryConf {
		for i := range c.Registries {
			if c.Registries[i].Prefix == host {
				return &c.Registries[i]
			}
		}
		c.Registries = append(c.Registries, RegistryConf{Prefix: host, Location: host})
		return &c.Registries[len(c.Registries)-1]
	}
	for _, h := range v.Insecure.Registries {
		entry(h).Insecure = true
	}
	for _, h := range v.Block.Registries {
		entry(h).Blocked = true
	}
	c.V1 = registriesV1{}
}

// RegistryConf is one [[registry]] table.
type RegistryConf struct {
	Prefix             string           `toml:"prefix"`
	Location           string           `toml:"location"`
	Insecure           bool             `toml:"insecure"`
	Blocked            bool             `toml:"blocked"`
	MirrorByDigestOnly bool             `toml:"mirror-by-digest-only"`
	Mirrors            []RegistryMirror `toml:"mirror"`
}

// RegistryMirror is one [[registry.mirror]] table.
type RegistryMirror struct {
	Location       string `toml:"location"`
	Insecure       bool   `toml:"insecure"`
	PullFromMirror string `toml:"pull-from-mirror"`
}

// LoadRegistriesConf reads and merges the registries.conf files named in
// sys (or the defaults). Missing files are not an error.
func LoadRegistriesConf(sys *SystemContext) (*RegistriesConf, error) {
	main, dir, aliases := DefaultRegistriesConf, DefaultRegistriesConfDir, ""
	if sys != nil {
		if sys.RegistriesConf != "" {
			main = sys.RegistriesConf
		}
		if sys.RegistriesConfDir != "" {
			dir = sys.RegistriesConfDir
		}
		aliases = sys.ShortNameAliasConf
	}
	files := []string{main}
	dropIns, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	sort.Strings(dropIns)
	files = append(files, dropIns...)
	if aliases != "" {
		files = append(files, aliases)
	}
	conf := &RegistriesConf{Aliases: map[string]string{}}
	for _, f := range files {
		var c RegistriesConf
		if _, err := toml.DecodeFile(f, &c); errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("reading registries configuration %s: %w", f, err)
		}
		c.fromV1()
		conf.merge(&c)
	}
	return conf, nil
}

func (c *RegistriesConf) merge(o *RegistriesConf) {
	if o.UnqualifiedSearchRegistries != nil {
		c.UnqualifiedSearchRegistries = o.UnqualifiedSearchRegistries
	}
	if o.ShortNameMode != "" {
		c.ShortNameMode = o.ShortNameMode
	}
	for k, v := range o.Aliases {
		c.Aliases[k] = v
	}
	for _, r := range o.Registries {
		if r.Prefix == "" {
			r.Prefix = r.Location
		}
		replaced := false
		for i := range c.Registries {
			if c.Registries[i].Prefix == r.Prefix {
				c.Registries[i], replaced = r, true
			}
		}
		if !replaced {
			c.Registries = append(c.Registries, r)
		}
	}
}

// FindRegistry returns the [[registry]] whose prefix matches the longest
// part of ref ("host[:port]/path"), or nil.
func (c *RegistriesConf) FindRegistry(ref string) *RegistryConf {
	var best *RegistryConf
	bestLen := -1
	for i := range c.Registries {
		r := &c.Registries[i]
		if prefixMatches(r.Prefix, ref) && len(r.Prefix) > bestLen {
			best, bestLen = r, len(r.Prefix)
		}
	}
	return best
}

func prefixMatches(prefix, ref string) bool {
	if wild, ok := strings.CutPrefix(prefix, "*."); ok {
		host, _, _ := strings.Cut(ref, "/")
		return strings.HasSuffix(host, "."+wild)
	}
	if !strings.HasPrefix(ref, prefix) {
		return false
	}
	rest := ref[len(prefix):]
	return rest == "" || rest[0] == '/' || rest[0] == ':' || rest[0] == '@'
}

// rewrite applies the registry's location to ref.
func (r *RegistryConf) rewrite(ref string) string {
	if r.Location == "" || r.Location == r.Prefix || strings.HasPrefix(r.Prefix, "*.") {
		return ref
	}
	return r.Location + strings.TrimPrefix(ref, r.Prefix)
}

// ShortNameMode is how ambiguous short names are treated.
type ShortNameMode int

const (
	// ShortNamePermissive tries every candidate in order.
	ShortNamePermissive ShortNameMode = iota
	// ShortNameEnforcing refuses a short name with several candidates.
	ShortNameEnforcing
	// ShortNameDisabled tries every candidate (the pre-v2 behaviour).
	ShortNameDisabled
)

// Mode parses short-name-mode; the default is permissive (Buildah's
// default too when there is no TTY to prompt on).
func (c *RegistriesConf) Mode() ShortNameMode {
	switch c.ShortNameMode {
	case "enforcing":
		return ShortNameEnforcing
	case "disabled":
		return ShortNameDisabled
	}
	return ShortNamePermissive
}

// ResolveShortName returns the fully qualified candidates for name, in the
// order they should be tried: name itself when qualified, the alias when
// one matches, else one per unqualified-search-registry.
func ResolveShortName(name string, sys *SystemContext) ([]string, error) {
	ref, err := image.ParseReference(name)
	if err != nil {
		return nil, fmt.Errorf("resolving %q: %w", name, err)
	}
	if ref.Domain != "" {
		return []string{name}, nil
	}
	conf, err := LoadRegistriesConf(sys)
	if err != nil {
		return nil, err
	}
	repo, suffix := ref.Path, strings.TrimPrefix(name, ref.Path)
	if alias, ok := conf.Aliases[repo]; ok {
		return []string{alias + suffix}, nil
	}
	var out []string
	for _, reg := range conf.UnqualifiedSearchRegistries {
		r := repo
		if (reg == "docker.io" || reg == "index.docker.io") && !strings.Contains(repo, "/") {
			r = "library/" + repo
		}
		out = append(out, reg+"/"+r+suffix)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolving %q: %w: no unqualified-search-registries in registries.conf", name, ErrShortName)
	}
	if len(out) > 1 && conf.Mode() == ShortNameEnforcing {
		return out, fmt.Errorf("resolving %q: %w: short-name-mode is enforcing and it is ambiguous among %v", name, ErrShortName, out)
	}
	return out, nil
}
