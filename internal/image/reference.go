package image

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// ErrBadReference is wrapped by every reference parsing error.
var ErrBadReference = errors.New("invalid image reference")

// BadReferenceError is what ParseReference returns for a name it
// refuses; it is ErrBadReference.
type BadReferenceError struct {
	Ref string
	Why string // what is wrong, in Docker's words where it has them
}

func (e *BadReferenceError) Error() string {
	return fmt.Sprintf("%s %q: %s", ErrBadReference, e.Ref, e.Why)
}

// Is makes errors.Is(err, ErrBadReference) hold.
func (e *BadReferenceError) Is(target error) bool { return target == ErrBadReference }

// Reference is a parsed image name: [domain/]path[:tag][@digest].
type Reference struct {
	Domain string // "" when the name had none
	Path   string
	Tag    string
	Digest digest.Digest
}

var (
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	domainPattern = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]+)?$`)
)

// ParseReference parses s without normalizing it: no domain or tag is
// added. It refuses upper case in the path, bad tags and bad digests.
func ParseReference(s string) (Reference, error) {
	var r Reference
	bad := func(why string) (Reference, error) {
		return Reference{}, &BadReferenceError{Ref: s, Why: why}
	}
	if s == "" {
		return bad("empty name")
	}
	rest := s
	if i := strings.Index(rest, "@"); i >= 0 {
		d := digest.Digest(rest[i+1:])
		if err := d.Validate(); err != nil {
			return bad("bad digest: " + err.Error())
		}
		r.Digest = d
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		r.Tag = rest[i+1:]
		if !validTag(r.Tag) {
			return bad("bad tag " + strconv(r.Tag))
		}
		rest = rest[:i]
	}
	if first, after, ok := strings.Cut(rest, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.HasPrefix(first, "[")) {
		if !domainPattern.MatchString(first) {
			return bad("bad registry host " + strconv(first))
		}
		r.Domain, rest = first, after
	}
	if rest == "" {
		return bad("no repository name")
	}
	for _, c := range strings.Split(rest, "/") {
		if !pathComponent.MatchString(c) {
			if strings.ToLower(c) == c {
				return bad("bad repository name component " + strconv(c))
			}
			return bad("repository name must be lowercase") // Docker's words, which scripts grep
		}
	}
	r.Path = rest
	// As Docker counts it: the whole name, registry included, and for a
	// short name the longest name it may stand for (docker.io/library/…).
	if n := len(r.DockerNormalized().Name()); len(r.Name()) > 255 || r.Domain == "" && n > 255 {
		return bad("repository name longer than 255 characters")
	}
	return r, nil
}

func strconv(s string) string { return fmt.Sprintf("%q", s) }

// Name is the repository: domain/path, or path when there is no domain.
func (r Reference) Name() string {
	if r.Domain == "" {
		return r.Path
	}
	return r.Domain + "/" + r.Path
}

// String formats the reference back to its text form.
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + string(r.Digest)
	}
	return s
}

// Normalized fills in what a bare name lacks the way Buildah names local
// images: no domain means "localhost", no tag and no digest means "latest";
// a Docker Hub name is as Docker writes it ("docker.io/library/x").
func (r Reference) Normalized() Reference {
	switch r.Domain {
	case "":
		r.Domain = "localhost"
	case "docker.io", "index.docker.io":
		return r.DockerNormalized()
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r
}

// DockerNormalized fills in what a bare name lacks the way Docker does:
// no domain means docker.io (index.docker.io is docker.io too), a
// one-component path there is under library/, and no tag and no digest
// means "latest". "busybox" is "docker.io/library/busybox:latest".
func (r Reference) DockerNormalized() Reference {
	if r.Domain == "" || r.Domain == "index.docker.io" {
		r.Domain = "docker.io"
	}
	if r.Domain == "docker.io" && !strings.Contains(r.Path, "/") {
		r.Path = "library/" + r.Path
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r
}

// NormalizeName parses s and normalizes it as a name for a local image.
func NormalizeName(s string) (string, error) {
	r, err := ParseReference(s)
	if err != nil {
		return "", err
	}
	return r.Normalized().String(), nil
}

// LocalCandidates lists the full names a short name may stand for in the
// local store, most likely first: as given, under localhost, and under
// docker.io (with library/ for one-component paths).
func LocalCandidates(s string) ([]string, error) {
	r, err := ParseReference(s)
	if err != nil {
		return nil, err
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	var cands []Reference
	if r.Domain != "" {
		cands = append(cands, r)
		if r.Domain == "docker.io" && !strings.Contains(r.Path, "/") {
			lib := r
			lib.Path = "library/" + r.Path
			cands = append(cands, lib)
		}
	} else {
		for _, d := range []string{"localhost", "docker.io"} {
			c := r
			c.Domain = d
			cands = append(cands, c)
			if d == "docker.io" && !strings.Contains(r.Path, "/") {
				c.Path = "library/" + r.Path
				cands = append(cands, c)
			}
		}
	}
	var out []string
	for _, c := range cands {
		if len(c.Name()) <= 255 { // a name too long once qualified is no name
			out = append(out, c.String())
		}
	}
	return out, nil
}

// Namespaces returns the scopes a repository name ("reg/ns/repo") falls
// in, narrowest first, as containers/image orders them for policy.json
// and registries.d: the name, its parent namespaces, the host (without
// port), and wildcards of the host's parent domains ("*.example.com",
// "*.com").
func Namespaces(repo string) []string {
	var out []string
	name := repo
	for {
		out = append(out, name)
		i := strings.LastIndex(name, "/")
		if i < 0 {
			break
		}
		name = name[:i]
	}
	if i := strings.Index(name, ":"); i >= 0 {
		name = name[:i]
	}
	for {
		i := strings.Index(name, ".")
		if i < 0 {
			break
		}
		name = name[i+1:]
		out = append(out, "*."+name)
	}
	return out
}

// validTag reports whether tag is a valid tag: [A-Za-z0-9_] then up to
// 127 of [A-Za-z0-9_.-]. (As a regular expression, the 127 repeats
// compile to a program that took 2 ms of every kiln start.)
func validTag(tag string) bool {
	if tag == "" || len(tag) > 128 || tag[0] == '.' || tag[0] == '-' {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
