package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/kiln-build/kiln/internal/transport/registry"
	"github.com/opencontainers/go-digest"
)

func joinErrs(errs []error) error { return errors.Join(errs...) }

// registryOptions builds the registry client options for repository ref.
func registryOptions(repo name.Repository, sys *SystemContext) (registry.Options, error) {
	host := repo.RegistryStr()
	if host == name.DefaultRegistry {
		host = "docker.io"
	}
	base, err := httpTransport(repo.RegistryStr(), sys)
	if err != nil {
		return registry.Options{}, err
	}
	auth, err := authenticator(host+"/"+repo.RepositoryStr(), sys)
	if err != nil {
		return registry.Options{}, fmt.Errorf("reading credentials for %s: %w", repo.Name(), err)
	}
	n, d := sys.retry()
	return registry.Options{Auth: auth, Transport: base, Retry: n, RetryDelay: d, Logger: sys.logger()}, nil
}

// endpoints returns where to pull ref from, in order: mirrors (when they
// apply), then the registry's location, as parsed references.
func endpoints(ref name.Reference, sys *SystemContext, pull bool) ([]name.Reference, error) {
	conf, full, insecure, err := registryScope(ref, sys)
	if err != nil {
		return nil, err
	}
	rc := conf.FindRegistry(full)
	if rc == nil {
		r, err := reparse(full, sys, insecure)
		return []name.Reference{r}, err
	}
	if rc.Blocked {
		// Buildah's words: "registry docker.io is blocked in ...".
		return nil, fmt.Errorf("accessing %s: registry %s is %w", full, rc.Prefix, ErrBlocked)
	}
	var out []name.Reference
	_, byDigest := ref.(name.Digest)
	if pull {
		for _, m := range rc.Mirrors {
			digestOnly := rc.MirrorByDigestOnly || m.PullFromMirror == "digest-only"
			if digestOnly && !byDigest || m.PullFromMirror == "tag-only" && byDigest {
				continue
			}
			mirrored := m.Location + trimPrefix(full, rc.Prefix)
			if r, err := reparse(mirrored, sys, m.Insecure); err == nil {
				out = append(out, r)
			}
		}
	}
	r, err := reparse(rc.rewrite(full), sys, rc.Insecure || insecure)
	if err != nil {
		return nil, err
	}
	return append(out, r), nil
}

// pushEndpoint is where a push of ref goes: ref's own registry. As in
// containers/image (containers-registries.conf(5)), registries.conf's
// location and mirrors apply to pulls only, so `push IMAGE` to a name
// whose pulls are redirected does not write to the redirect; the
// registry's insecure setting and the registry sources still apply.
func pushEndpoint(ref name.Reference, sys *SystemContext) (name.Reference, error) {
	conf, full, insecure, err := registryScope(ref, sys)
	if err != nil {
		return nil, err
	}
	if rc := conf.FindRegistry(full); rc != nil {
		insecure = insecure || rc.Insecure
	}
	return reparse(full, sys, insecure)
}

// registryScope reads what applies to ref before registries.conf's
// entry for it: the configuration, ref's full name, and whether the
// registry sources (BUILD_REGISTRY_SOURCES) allow its registry and call
// it insecure.
func registryScope(ref name.Reference, sys *SystemContext) (*RegistriesConf, string, bool, error) {
	conf, err := LoadRegistriesConf(sys)
	if err != nil {
		return nil, "", false, err
	}
	full := dockerName(ref)
	var sources RegistrySources
	if sys != nil {
		sources = sys.Sources
	}
	host, _, _ := cutHost(full)
	if err := sources.check(host); err != nil {
		return nil, "", false, err
	}
	return conf, full, slices.Contains(sources.Insecure, host), nil
}

func trimPrefix(s, prefix string) string {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):]
	}
	return s
}

// dockerName returns "docker.io/library/x:tag" style names.
func dockerName(ref name.Reference) string {
	reg := ref.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	sep := ":"
	if _, ok := ref.(name.Digest); ok {
		sep = "@"
	}
	return reg + "/" + ref.Context().RepositoryStr() + sep + ref.Identifier()
}

func reparse(s string, sys *SystemContext, insecure bool) (name.Reference, error) {
	host, _, _ := cutHost(s)
	opts := registryOpts(host, sys)
	if insecure && (sys == nil || sys.TLSVerify == nil) {
		opts = []name.Option{name.Insecure}
	}
	return name.ParseReference(s, opts...)
}

func cutHost(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func newRegistrySource(ctx context.Context, ref name.Reference, sys *SystemContext) (Source, error) {
	eps, err := endpoints(ref, sys, true)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, ep := range eps {
		src, err := openRegistrySource(ctx, ep, sys)
		if err == nil {
			src.name, src.sys = dockerName(ref), sys
			return src, nil
		}
		errs = append(errs, err)
	}
	// containers/image's words, which scripts match.
	return nil, fmt.Errorf("initializing source docker://%s: %w", dockerName(ref), errors.Join(errs...))
}

func openRegistrySource(ctx context.Context, ref name.Reference, sys *SystemContext) (*cachedSource, error) {
	opts, err := registryOptions(ref.Context(), sys)
	if err != nil {
		return nil, err
	}
	src, err := registry.NewSource(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	raw, mt, err := src.Manifest(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &cachedSource{Source: src, raw: raw, mt: mt}, nil
}

// cachedSource keeps the top-level manifest fetched when the source was
// opened, so that a tag is resolved once.
type cachedSource struct {
	*registry.Source
	mu   sync.Mutex
	raw  []byte
	mt   string
	name string
	sys  *SystemContext
}

// ImageName returns the name asked for (not a mirror's).
func (s *cachedSource) ImageName() string { return s.name }

func (s *cachedSource) Manifest(ctx context.Context, instance *digest.Digest) ([]byte, string, error) {
	if instance == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.raw, s.mt, nil
	}
	return s.Source.Manifest(ctx, instance)
}

func (s *cachedSource) Blob(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	return s.Source.Blob(ctx, d)
}

func newRegistryDestination(ctx context.Context, ref name.Reference, sys *SystemContext) (Destination, error) {
	ep, err := pushEndpoint(ref, sys)
	if err != nil {
		return nil, err
	}
	opts, err := registryOptions(ep.Context(), sys)
	if err != nil {
		return nil, err
	}
	d, err := registry.NewDestination(ctx, ep, opts)
	if err != nil {
		return nil, fmt.Errorf("opening %s for writing: %w", dockerName(ref), err)
	}
	return &registryDestination{Destination: d, name: dockerName(ref), sys: sys}, nil
}

// registryRef extracts the docker reference of ref (resolving a short name
// to its single candidate).
func registryRef(ref Ref, sys *SystemContext) (name.Reference, error) {
	switch r := ref.(type) {
	case *dockerRef:
		return r.ref, nil
	case *shortRef:
		cands, err := ResolveShortName(r.name, sys)
		if err != nil {
			return nil, err
		}
		d, err := parseDockerRef(cands[0])
		if err != nil {
			return nil, err
		}
		return d.ref, nil
	}
	return nil, fmt.Errorf("%s: %w: not a docker:// reference", ref, ErrUnsupported)
}

func registryClient(ctx context.Context, ref Ref, sys *SystemContext, actions []string) (*registry.Client, name.Reference, error) {
	r, err := registryRef(ref, sys)
	if err != nil {
		return nil, nil, err
	}
	eps, err := endpoints(r, sys, false)
	if err != nil {
		return nil, nil, err
	}
	ep := eps[len(eps)-1]
	opts, err := registryOptions(ep.Context(), sys)
	if err != nil {
		return nil, nil, err
	}
	c, err := registry.NewClient(ctx, ep.Context(), actions, opts)
	return c, ep, err
}

// Tags lists the tags of the repository of a docker:// reference.
func Tags(ctx context.Context, ref Ref, sys *SystemContext) ([]string, error) {
	c, _, err := registryClient(ctx, ref, sys, []string{"pull"})
	if err != nil {
		return nil, err
	}
	return c.Tags(ctx)
}

// Delete deletes the manifest a docker:// reference points to (a tag is
// resolved to its digest first, as the registry API requires).
func Delete(ctx context.Context, ref Ref, sys *SystemContext) error {
	c, ep, err := registryClient(ctx, ref, sys, []string{"pull", "push", "delete"})
	if err != nil {
		return err
	}
	_, _, d, err := c.GetManifest(ctx, ep.Identifier())
	if err != nil {
		return fmt.Errorf("deleting %s: %w", ref, err)
	}
	return c.DeleteManifest(ctx, d)
}
