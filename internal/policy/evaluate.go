package policy

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/signature"
)

// Image is what the policy is asked about.
type Image struct {
	// Transport is the transport name ("docker", "oci", "dir", …).
	Transport string
	// Scope is the image's own identity in the transport's scopes
	// ("docker.io/library/busybox:latest", "/abs/dir"); Namespaces
	// are the wider scopes containing it, narrowest first.
	Scope      string
	Namespaces []string
	// Reference is the Docker reference the image is used by
	// (normalized, with its tag or digest); nil when it has none.
	Reference *image.Reference
	// Manifest is the image's top-level manifest, byte for byte.
	Manifest []byte
	// Signatures are the image's signature blobs (signature.FromBlob).
	Signatures [][]byte
}

// Result is what accepted an image.
type Result struct {
	// Scope is the policy scope that applied ("" and the transport for
	// a transport's default; Transport "" for the policy's default).
	Transport, Scope string
	// Requirements are the rules the image met.
	Requirements Requirements
	// Signatures are the signatures that met a signature requirement.
	Signatures []signature.Verified
}

// DockerScope returns the scope and namespaces of a registry image as
// containers/image computes them: "reg/repo:tag" (or "@digest"), then
// "reg/repo", its parent namespaces, the host, and wildcards of the
// host's parent domains ("*.example.com", "*.com"); ref is normalized.
func DockerScope(ref image.Reference) (scope string, namespaces []string) {
	return ref.String(), image.Namespaces(ref.Name())
}

// PathScope returns the scope and namespaces of an image at an absolute
// path (dir:, oci:, archives): the path, then its parent directories.
// For oci: with an image name, scope is "PATH:NAME" and PATH comes first
// among the namespaces.
func PathScope(path, name string) (scope string, namespaces []string) {
	scope = path
	if name != "" {
		scope = path + ":" + name
		namespaces = append(namespaces, path)
	}
	for p := path; ; {
		i := strings.LastIndex(p, "/")
		if i <= 0 {
			break
		}
		p = p[:i]
		namespaces = append(namespaces, p)
	}
	return scope, namespaces
}

// For returns the requirements that apply to img's transport and scope,
// the most specific first: the image's identity, its namespaces, the
// transport's "" scope, the default.
func (p *Policy) For(transport, scope string, namespaces []string) (Requirements, string) {
	if scopes, ok := p.Transports[transport]; ok {
		if r, ok := scopes[scope]; ok && scope != "" {
			return r, scope
		}
		for _, ns := range namespaces {
			if r, ok := scopes[ns]; ok {
				return r, ns
			}
		}
		if r, ok := scopes[""]; ok {
			return r, ""
		}
	}
	return p.Default, "default"
}

// NeedsSignatures reports whether the requirements for the scope look
// at signatures (so that a caller fetches them).
func (p *Policy) NeedsSignatures(transport, scope string, namespaces []string) bool {
	reqs, _ := p.For(transport, scope, namespaces)
	for _, r := range reqs {
		switch r.(type) {
		case *SignedBy, *SigstoreSigned:
			return true
		}
	}
	return false
}

// Evaluate decides whether img may be used, at time now (key and
// signature expiry). A rejected image is an error wrapping ErrRejected
// that says why; a key the policy names that cannot be read is an
// error wrapping signature.ErrKeyNotFound (the image is not accepted
// either way).
func (p *Policy) Evaluate(img Image, now time.Time) (Result, error) {
	reqs, scope := p.For(img.Transport, img.Scope, img.Namespaces)
	res := Result{Transport: img.Transport, Scope: scope, Requirements: reqs}
	if scope == "default" {
		res.Transport = ""
	}
	where := describeScope(img.Transport, scope)
	sigs, parseErrs := parseSignatures(img.Signatures)
	for _, r := range reqs {
		switch r := r.(type) {
		case *InsecureAcceptAnything:
		case *Reject:
			// containers/image's words after ours: scripts grep them.
			return res, fmt.Errorf("%w: %s rejects every image (Source image rejected: Running image %s is rejected by policy.)", ErrRejected, where, img.transportName())
		case *Unsupported:
			return res, fmt.Errorf("%w: %s needs %s: %s", ErrRejected, where, r.Kind, r.Why)
		case *SignedBy:
			v, err := r.accept(img, sigs, now)
			if err != nil {
				return res, explain(where, r, img, errors.Join(append(parseErrs, err)...))
			}
			res.Signatures = append(res.Signatures, v...)
		case *SigstoreSigned:
			v, err := r.accept(img, sigs, now)
			if err != nil {
				return res, explain(where, r, img, errors.Join(append(parseErrs, err)...))
			}
			res.Signatures = append(res.Signatures, v...)
		default:
			return res, fmt.Errorf("%w: %s: unknown requirement %T", ErrRejected, where, r)
		}
	}
	return res, nil
}

func describeScope(transport, scope string) string {
	switch scope {
	case "default":
		return "the policy's default"
	case "":
		return fmt.Sprintf("the default of transport %q", transport)
	}
	return fmt.Sprintf("transport %q scope %q", transport, scope)
}

func explain(where string, r Requirement, img Image, err error) error {
	if errors.Is(err, signature.ErrKeyNotFound) {
		return fmt.Errorf("%s (%s): %w", where, r.Type(), err)
	}
	if len(img.Signatures) == 0 {
		return fmt.Errorf("%w: %s needs %s and the image has no signatures", ErrRejected, where, r.Type())
	}
	return fmt.Errorf("%w: %s needs %s and none of the image's %d signatures is accepted: %v", ErrRejected, where, r.Type(), len(img.Signatures), err)
}

func parseSignatures(blobs [][]byte) ([]signature.Signature, []error) {
	var out []signature.Signature
	var errs []error
	for i, b := range blobs {
		s, err := signature.FromBlob(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("signature %d: %w", i+1, err))
			continue
		}
		out = append(out, s)
	}
	return out, errs
}

// checkPayload matches what a verified signature says with the image.
func checkPayload(v signature.Verified, img Image, id Identity) error {
	if !signature.MatchesManifest(img.Manifest, v.Payload.ManifestDigest) {
		return fmt.Errorf("signature by %s is for manifest %s, not this image's", v.Signer, v.Payload.ManifestDigest)
	}
	if id == nil {
		id = MatchRepoDigestOrExact{}
	}
	if err := id.Match(img.Reference, v.Payload.DockerReference); err != nil {
		return fmt.Errorf("signature by %s: %w", v.Signer, err)
	}
	return nil
}

func (r *SignedBy) keyring() (*signature.Keyring, error) {
	if r.KeyData != nil {
		k, err := signature.ReadKeyring(r.KeyData)
		if err != nil {
			return nil, fmt.Errorf("%w: keyData: %v", signature.ErrKeyNotFound, err)
		}
		return k, nil
	}
	paths := r.KeyPaths
	if r.KeyPath != "" {
		paths = []string{r.KeyPath}
	}
	k, err := signature.LoadKeyring(paths...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", signature.ErrKeyNotFound, err)
	}
	return k, nil
}

func (r *SignedBy) accept(img Image, sigs []signature.Signature, now time.Time) ([]signature.Verified, error) {
	kr, err := r.keyring()
	if err != nil {
		return nil, err
	}
	return acceptFormat(img, sigs, now, signature.SimpleSigning, "simple-signing", kr.VerifySimple, r.SignedIdentity)
}

func (r *SigstoreSigned) keys() (*signature.SigstoreKeys, error) {
	var datas [][]byte
	switch {
	case r.KeyData != nil:
		datas = [][]byte{r.KeyData}
	case r.KeyDatas != nil:
		datas = r.KeyDatas
	default:
		paths := r.KeyPaths
		if r.KeyPath != "" {
			paths = []string{r.KeyPath}
		}
		for _, p := range paths {
			d, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("%w: reading sigstore public key: %v", signature.ErrKeyNotFound, err)
			}
			datas = append(datas, d)
		}
	}
	all := &signature.SigstoreKeys{}
	for _, d := range datas {
		k, err := signature.ReadSigstoreKeys(d)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", signature.ErrKeyNotFound, err)
		}
		all.Add(k)
	}
	return all, nil
}

func (r *SigstoreSigned) accept(img Image, sigs []signature.Signature, now time.Time) ([]signature.Verified, error) {
	keys, err := r.keys()
	if err != nil {
		return nil, err
	}
	return acceptFormat(img, sigs, now, signature.Sigstore, "sigstore", keys.VerifySigstore, r.SignedIdentity)
}

// acceptFormat returns the signatures of format f that verify and whose
// payload names img as id accepts; none is an error saying why each
// failed ("no NAME signature" when there was none of f).
func acceptFormat(img Image, sigs []signature.Signature, now time.Time, f signature.Format, name string,
	verify func(signature.Signature, time.Time) (signature.Verified, error), id Identity) ([]signature.Verified, error) {
	var errs []error
	var ok []signature.Verified
	for _, s := range sigs {
		if s.Format != f {
			continue
		}
		v, err := verify(s, now)
		if err == nil {
			err = checkPayload(v, img, id)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ok = append(ok, v)
	}
	if len(ok) == 0 {
		if len(errs) == 0 {
			errs = append(errs, fmt.Errorf("no %s signature", name))
		}
		return nil, errors.Join(errs...)
	}
	return ok, nil
}

// transportName is the image's name as containers/image prints it
// ("docker://docker.io/library/busybox:latest", "oci:/dir").
func (img Image) transportName() string {
	if img.Transport == "docker" {
		return "docker://" + img.Scope
	}
	return img.Transport + ":" + img.Scope
}
