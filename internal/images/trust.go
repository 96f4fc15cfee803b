package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/policy"
	"github.com/kiln-build/kiln/internal/signature"
	"github.com/kiln-build/kiln/internal/transport"
)

// Trust says which signature policy an image read from a transport must
// meet before anything of it is stored or copied.
type Trust struct {
	// PolicyPath is the policy.json (--signature-policy). "" means
	// policy.DefaultPath, where a missing file accepts every image
	// (kiln's behaviour where no containers policy is installed); a
	// PolicyPath given and missing is an error.
	PolicyPath string
}

// ErrPolicy reports a policy that cannot be used (missing or invalid):
// nothing is pulled.
var ErrPolicy = errors.New("signature policy")

// Load reads the policy; nil means every image is accepted.
func (t Trust) Load() (*policy.Policy, error) {
	path := t.PolicyPath
	if path == "" {
		path = policy.DefaultPath
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	p, err := policy.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	return p, nil
}

// check applies the policy to the image src reads (r names it): the
// top-level manifest and, when the policy looks at them, its
// signatures. Nothing is copied yet.
func (t Trust) check(ctx context.Context, r transport.Ref, src transport.Source) (policy.Result, error) {
	p, err := t.Load()
	if err != nil || p == nil {
		return policy.Result{}, err
	}
	img, err := policyImage(ctx, r, src, p)
	if err != nil {
		return policy.Result{}, err
	}
	return p.Evaluate(img, time.Now())
}

// policyImage describes what src reads for the policy: its transport,
// scope and Docker reference, its top-level manifest, and its
// signatures when the policy needs them (nil p: always).
func policyImage(ctx context.Context, r transport.Ref, src transport.Source, p *policy.Policy) (policy.Image, error) {
	img := policy.Image{Transport: r.Transport()}
	switch {
	case r.Transport() == transport.TransportDocker:
		ref, err := image.ParseReference(transport.ImageName(r, src))
		if err != nil {
			return img, fmt.Errorf("naming %s for the signature policy: %w", r, err)
		}
		ref = ref.DockerNormalized()
		img.Reference = &ref
		img.Scope, img.Namespaces = policy.DockerScope(ref)
	default:
		if path, name, ok := transport.LocalPath(r); ok {
			abs, err := filepath.Abs(path)
			if err != nil {
				return img, err
			}
			img.Scope, img.Namespaces = policy.PathScope(abs, name)
		}
		if n := transport.ImageName(r, src); n != "" {
			if ref, err := image.ParseReference(n); err == nil {
				ref = ref.DockerNormalized()
				img.Reference = &ref
			}
		}
	}
	raw, _, err := src.Manifest(ctx, nil)
	if err != nil {
		return img, err
	}
	img.Manifest = raw
	if p == nil || p.NeedsSignatures(img.Transport, img.Scope, img.Namespaces) {
		if img.Signatures, err = transport.Signatures(ctx, src, digest.FromBytes(raw)); err != nil {
			return img, fmt.Errorf("reading signatures of %s: %w", r, err)
		}
	}
	return img, nil
}

// SignOptions say how a push or copy signs the manifest it writes.
type SignOptions struct {
	// By is the fingerprint of a GPG key in GPGHome (--sign-by).
	By      string
	GPGHome string
	// SigstoreKey is a cosign private key file
	// (--sign-by-sigstore-private-key).
	SigstoreKey string
	// Passphrase decrypts the key (--sign-passphrase-file).
	Passphrase []byte
	// Identity is the Docker reference the signatures name; "" is the
	// destination's (which must then be a registry).
	Identity string
}

// Enabled reports whether anything is to be signed.
func (o SignOptions) Enabled() bool { return o.By != "" || o.SigstoreKey != "" }

// signer loads the keys at once (a wrong passphrase fails before
// anything is written) and returns the CopyOptions.Sign of dest.
func (o SignOptions) signer(dest transport.Ref, sys *transport.SystemContext) (func(context.Context, digest.Digest) ([][]byte, error), error) {
	if !o.Enabled() {
		return nil, nil
	}
	identity := o.Identity
	if identity == "" {
		var err error
		if identity, err = transport.DockerReference(dest, sys); err != nil {
			return nil, fmt.Errorf("signing for %s: it has no Docker reference; use --sign-identity: %w", dest, err)
		}
	}
	if r, err := image.ParseReference(identity); err != nil || r.Domain == "" || r.Tag == "" && r.Digest == "" {
		return nil, fmt.Errorf("signing identity %q is not a full Docker reference (registry/repository:tag)", identity)
	}
	type signer interface {
		Sign(signature.Payload) (signature.Signature, error)
	}
	var signers []signer
	if o.By != "" {
		s, err := signature.LoadGPGSigner(o.GPGHome, o.By, o.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("loading signing key: %w", err)
		}
		signers = append(signers, s)
	}
	if o.SigstoreKey != "" {
		s, err := signature.LoadSigstoreSigner(o.SigstoreKey, o.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("loading signing key: %w", err)
		}
		signers = append(signers, s)
	}
	return func(_ context.Context, d digest.Digest) ([][]byte, error) {
		var out [][]byte
		for _, s := range signers {
			sig, err := s.Sign(signature.Payload{DockerReference: identity, ManifestDigest: d, Creator: "kiln", Timestamp: time.Now()})
			if err != nil {
				return nil, err
			}
			b, err := sig.Blob()
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		return out, nil
	}, nil
}
