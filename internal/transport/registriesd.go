package transport

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kiln-build/kiln/internal/image"
)

// DefaultRegistriesDir is where registries.d(5) files configure
// signature storage for registries.
const DefaultRegistriesDir = "/etc/containers/registries.d"

// defaultLookaside is where signatures go when registries.d names no
// lookaside store (root's default, as containers/image).
const defaultLookaside = "file:///var/lib/containers/sigstore"

// userLookaside is the default lookaside store of an unprivileged user,
// under HOME.
const userLookaside = ".local/share/containers/sigstore"

// signatureStorage is the merged content of registries.d.
type signatureStorage struct {
	// fallback is the lookaside URL used where no namespace names one.
	fallback      string
	DefaultDocker *lookasideNamespace           `yaml:"default-docker"`
	Docker        map[string]lookasideNamespace `yaml:"docker"`
}

// lookasideNamespace is one namespace of registries.d.
type lookasideNamespace struct {
	Lookaside              string `yaml:"lookaside"`
	LookasideStaging       string `yaml:"lookaside-staging"`
	SigStore               string `yaml:"sigstore"`
	SigStoreStaging        string `yaml:"sigstore-staging"`
	UseSigstoreAttachments *bool  `yaml:"use-sigstore-attachments,omitempty"`
}

// registriesDir is the registries.d of sys: RegistriesDir, else
// ~/.config/containers/registries.d when it exists, else the system's.
func (sys *SystemContext) registriesDir() string {
	if sys != nil && sys.RegistriesDir != "" {
		return sys.RegistriesDir
	}
	if home := sys.getenv("HOME"); home != "" {
		d := filepath.Join(home, ".config/containers/registries.d")
		if _, err := os.Stat(d); err == nil {
			return d
		}
	}
	return DefaultRegistriesDir
}

// loadSignatureStorage reads and merges every *.yaml of registries.d;
// a namespace (or default-docker) defined twice is an error.
func loadSignatureStorage(sys *SystemContext) (*signatureStorage, error) {
	dir := sys.registriesDir()
	merged := &signatureStorage{Docker: map[string]lookasideNamespace{}, fallback: defaultLookaside}
	if home := sys.getenv("HOME"); sys != nil && sys.Rootless && home != "" {
		merged.fallback = (&url.URL{Scheme: "file", Path: filepath.Join(home, userLookaside)}).String()
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return merged, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading registries.d: %w", err)
	}
	from := map[string]string{}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading registries.d: %w", err)
		}
		var c signatureStorage
		if err := yaml.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", path, err)
		}
		if c.DefaultDocker != nil {
			if merged.DefaultDocker != nil {
				return nil, fmt.Errorf(`parsing %s: "default-docker" is defined in %s too`, path, from[""])
			}
			merged.DefaultDocker, from[""] = c.DefaultDocker, path
		}
		for ns, v := range c.Docker {
			if _, dup := merged.Docker[ns]; dup {
				return nil, fmt.Errorf("parsing %s: namespace %q is defined in %s too", path, ns, from[ns])
			}
			merged.Docker[ns], from[ns] = v, path
		}
	}
	return merged, nil
}

// dockerNamespaces returns "reg/repo:tag", "reg/repo", its parents, the
// host and the host's wildcard domains: the scopes a registry image
// falls in, narrowest first (containers/image's order).
func dockerNamespaces(full, repo string) []string {
	return append([]string{full}, image.Namespaces(repo)...)
}

// namespaceFor returns the configuration of the narrowest namespace of
// the image that has one, for the field pick chooses, and the default.
func (s *signatureStorage) find(full, repo string, pick func(lookasideNamespace) bool) (lookasideNamespace, bool) {
	for _, ns := range dockerNamespaces(full, repo) {
		if v, ok := s.Docker[ns]; ok && pick(v) {
			return v, true
		}
	}
	if s.DefaultDocker != nil && pick(*s.DefaultDocker) {
		return *s.DefaultDocker, true
	}
	return lookasideNamespace{}, false
}

// lookasideBase returns the URL of the lookaside store of the image
// (full "reg/repo:tag", repo "reg/repo") for reading or writing, with
// the repository's path appended as containers/image does.
func (s *signatureStorage) lookasideBase(full, repo string, write bool) (*url.URL, error) {
	top := func(v lookasideNamespace) string {
		if write {
			if v.LookasideStaging != "" {
				return v.LookasideStaging
			}
			if v.SigStoreStaging != "" {
				return v.SigStoreStaging
			}
		}
		if v.Lookaside != "" {
			return v.Lookaside
		}
		return v.SigStore
	}
	raw := s.fallback
	if v, ok := s.find(full, repo, func(v lookasideNamespace) bool { return top(v) != "" }); ok {
		raw = top(v)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("signature storage URL %q: %w", raw, err)
	}
	_, path, _ := strings.Cut(repo, "/")
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + path
	return u, nil
}

// useAttachments reports whether cosign signatures are read from and
// written to "sha256-DIGEST.sig" tags: unless registries.d says
// use-sigstore-attachments: false for the image's namespace. (Unlike
// containers/image, where they are off unless turned on: kiln signs
// with cosign's layout by default.)
func (s *signatureStorage) useAttachments(full, repo string) bool {
	v, ok := s.find(full, repo, func(v lookasideNamespace) bool { return v.UseSigstoreAttachments != nil })
	return !ok || *v.UseSigstoreAttachments
}

// SignatureStore returns the lookaside URL registries.d gives the
// docker scope (a registry, namespace or repository), for display
// (`image trust show`); "" when none is configured for it.
func SignatureStore(sys *SystemContext, scope string) string {
	s, err := loadSignatureStorage(sys)
	if err != nil {
		return ""
	}
	if v, ok := s.Docker[scope]; ok {
		if v.Lookaside != "" {
			return v.Lookaside
		}
		return v.SigStore
	}
	return ""
}
