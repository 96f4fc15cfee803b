package policy

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/internal/image"
)

// Identity is a signedIdentity rule: whether a signature's Docker
// reference may stand for the image's. A nil Identity means
// MatchRepoDigestOrExact.
type Identity interface {
	// Match reports nil when signed (the reference in a signature)
	// stands for img (the reference the image is used by; nil when the
	// image has none).
	Match(img *image.Reference, signed string) error
}

// MatchExact needs the signature to name the image's reference exactly,
// tag or digest included.
type MatchExact struct{}

// MatchRepoDigestOrExact is MatchExact for an image used by tag and
// MatchRepository for one used by digest (the digest is checked against
// the signature anyway). The default.
type MatchRepoDigestOrExact struct{}

// MatchRepository needs the same repository, whatever the tag.
type MatchRepository struct{}

// ExactReference needs the signature to name DockerReference, whatever
// the image is used by.
type ExactReference struct{ DockerReference string }

// ExactRepository needs the signature to name DockerRepository.
type ExactRepository struct{ DockerRepository string }

// RemapIdentity replaces Prefix of the image's name with SignedPrefix,
// then applies MatchRepoDigestOrExact (mirrors signed under the
// original name).
type RemapIdentity struct{ Prefix, SignedPrefix string }

func parseIdentity(data json.RawMessage) (Identity, error) {
	if data == nil {
		return nil, nil
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("signedIdentity: %w", err)
	}
	var v struct {
		Type             string `json:"type"`
		DockerReference  string `json:"dockerReference"`
		DockerRepository string `json:"dockerRepository"`
		Prefix           string `json:"prefix"`
		SignedPrefix     string `json:"signedPrefix"`
	}
	if err := strict(data, &v); err != nil {
		return nil, fmt.Errorf("signedIdentity: %w", err)
	}
	extra := func(allowed ...string) error {
		set := map[string]string{"dockerReference": v.DockerReference, "dockerRepository": v.DockerRepository, "prefix": v.Prefix, "signedPrefix": v.SignedPrefix}
		for _, a := range allowed {
			if set[a] == "" {
				return fmt.Errorf("signedIdentity %s: %q is missing", v.Type, a)
			}
			delete(set, a)
		}
		for k, val := range set {
			if val != "" {
				return fmt.Errorf("signedIdentity %s: unexpected field %q", v.Type, k)
			}
		}
		return nil
	}
	switch v.Type {
	case "matchExact":
		return MatchExact{}, extra()
	case "matchRepoDigestOrExact":
		return MatchRepoDigestOrExact{}, extra()
	case "matchRepository":
		return MatchRepository{}, extra()
	case "exactReference":
		if err := extra("dockerReference"); err != nil {
			return nil, err
		}
		r, err := normalize(v.DockerReference)
		if err != nil || r.Tag == "" && r.Digest == "" {
			return nil, fmt.Errorf("signedIdentity exactReference: %q is no reference with a tag or digest", v.DockerReference)
		}
		return ExactReference{DockerReference: v.DockerReference}, nil
	case "exactRepository":
		if err := extra("dockerRepository"); err != nil {
			return nil, err
		}
		if _, err := normalize(v.DockerRepository); err != nil {
			return nil, fmt.Errorf("signedIdentity exactRepository: %w", err)
		}
		return ExactRepository{DockerRepository: v.DockerRepository}, nil
	case "remapIdentity":
		if err := extra("prefix", "signedPrefix"); err != nil {
			return nil, err
		}
		for _, p := range []string{v.Prefix, v.SignedPrefix} {
			if !validPrefix(p) {
				return nil, fmt.Errorf("signedIdentity remapIdentity: invalid prefix %q", p)
			}
		}
		return RemapIdentity{Prefix: v.Prefix, SignedPrefix: v.SignedPrefix}, nil
	case "":
		return nil, fmt.Errorf(`signedIdentity without "type"`)
	}
	return nil, fmt.Errorf("unknown signedIdentity type %q", v.Type)
}

// validPrefix accepts a host, host/namespace or host/repository.
func validPrefix(p string) bool {
	if p == "" || strings.ContainsAny(p, "@") || strings.HasSuffix(p, "/") {
		return false
	}
	if !strings.Contains(p, "/") {
		_, err := image.ParseReference(p + "/x")
		return err == nil
	}
	_, err := image.ParseReference(p)
	return err == nil
}

// normalize parses a Docker reference as Docker does (docker.io and
// library/ filled in) without adding a tag.
func normalize(s string) (image.Reference, error) {
	r, err := image.ParseReference(s)
	if err != nil {
		return r, err
	}
	if r.Domain == "" || r.Domain == "index.docker.io" {
		r.Domain = "docker.io"
	}
	if r.Domain == "docker.io" && !strings.Contains(r.Path, "/") {
		r.Path = "library/" + r.Path
	}
	return r, nil
}

func signedRef(s string) (image.Reference, error) {
	r, err := normalize(s)
	if err != nil {
		return r, fmt.Errorf("the signature names %q: %w", s, err)
	}
	return r, nil
}

func noReference() error {
	return fmt.Errorf("the image has no Docker reference to match the signature's against")
}

func nameOnly(r image.Reference) bool { return r.Tag == "" && r.Digest == "" }

// Match implements Identity.
func (MatchExact) Match(img *image.Reference, signed string) error {
	if img == nil {
		return noReference()
	}
	s, err := signedRef(signed)
	if err != nil {
		return err
	}
	if nameOnly(*img) || nameOnly(s) || s.String() != img.String() {
		return fmt.Errorf("the signature is for %s, not %s", s, img)
	}
	return nil
}

// Match implements Identity.
func (MatchRepoDigestOrExact) Match(img *image.Reference, signed string) error {
	if img == nil {
		return noReference()
	}
	s, err := signedRef(signed)
	if err != nil {
		return err
	}
	switch {
	case img.Tag != "":
		if s.String() == img.String() {
			return nil
		}
	case img.Digest != "":
		if s.Name() == img.Name() {
			return nil
		}
	}
	return fmt.Errorf("the signature is for %s, not %s", s, img)
}

// Match implements Identity.
func (MatchRepository) Match(img *image.Reference, signed string) error {
	if img == nil {
		return noReference()
	}
	s, err := signedRef(signed)
	if err != nil {
		return err
	}
	if s.Name() != img.Name() {
		return fmt.Errorf("the signature is for repository %s, not %s", s.Name(), img.Name())
	}
	return nil
}

// Match implements Identity.
func (e ExactReference) Match(_ *image.Reference, signed string) error {
	want, err := normalize(e.DockerReference)
	if err != nil {
		return err
	}
	s, err := signedRef(signed)
	if err != nil {
		return err
	}
	if nameOnly(s) || s.String() != want.String() {
		return fmt.Errorf("the signature is for %s, not %s", s, want)
	}
	return nil
}

// Match implements Identity.
func (e ExactRepository) Match(_ *image.Reference, signed string) error {
	want, err := normalize(e.DockerRepository)
	if err != nil {
		return err
	}
	s, err := signedRef(signed)
	if err != nil {
		return err
	}
	if s.Name() != want.Name() {
		return fmt.Errorf("the signature is for repository %s, not %s", s.Name(), want.Name())
	}
	return nil
}

// Match implements Identity.
func (r RemapIdentity) Match(img *image.Reference, signed string) error {
	if img == nil {
		return noReference()
	}
	name := img.Name()
	if name == r.Prefix || strings.HasPrefix(name, r.Prefix+"/") {
		remapped, err := normalize(r.SignedPrefix + name[len(r.Prefix):])
		if err != nil {
			return fmt.Errorf("remapping %s: %w", name, err)
		}
		remapped.Tag, remapped.Digest = img.Tag, img.Digest
		img = &remapped
	}
	return MatchRepoDigestOrExact{}.Match(img, signed)
}

// identityJSON is how each identity is written.
func identityJSON(id Identity) map[string]string {
	switch v := id.(type) {
	case MatchExact:
		return map[string]string{"type": "matchExact"}
	case MatchRepoDigestOrExact:
		return map[string]string{"type": "matchRepoDigestOrExact"}
	case MatchRepository:
		return map[string]string{"type": "matchRepository"}
	case ExactReference:
		return map[string]string{"type": "exactReference", "dockerReference": v.DockerReference}
	case ExactRepository:
		return map[string]string{"type": "exactRepository", "dockerRepository": v.DockerRepository}
	case RemapIdentity:
		return map[string]string{"type": "remapIdentity", "prefix": v.Prefix, "signedPrefix": v.SignedPrefix}
	}
	return nil
}
