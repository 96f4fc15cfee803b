package images

import (
	"context"
	"errors"

	"time"

	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/policy"
	"github.com/kiln-build/kiln/internal/signature"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// VerifyOptions say how Verify reads the image and which policy it
// applies.
type VerifyOptions struct {
	Trust Trust
	// System reaches a TRANSPORT:REF image; nil means the defaults.
	System *transport.SystemContext
}

// SignatureReport is what Verify found out about one signature.
type SignatureReport struct {
	Format string `json:"format"`
	// Signer is the key that made it (a GPG fingerprint or long key ID,
	// a sigstore key's "sha256:…"); Claims are what it says, verified
	// or not.
	Signer          string        `json:"signer,omitempty"`
	DockerReference string        `json:"dockerReference,omitempty"`
	ManifestDigest  digest.Digest `json:"manifestDigest,omitempty"`
	// Accepted is set when the signature alone meets the policy's
	// signature requirement for the image; Problem says why not.
	Accepted bool   `json:"accepted"`
	Problem  string `json:"problem,omitempty"`
}

// VerifyReport is what `kiln image verify` prints.
type VerifyReport struct {
	Image          string            `json:"image"`
	ManifestDigest digest.Digest     `json:"manifestDigest"`
	Scope          string            `json:"scope"`
	Requirements   []string          `json:"requirements"`
	Accepted       bool              `json:"accepted"`
	Problem        string            `json:"problem,omitempty"`
	Signatures     []SignatureReport `json:"signatures"`
}

// Verify says who signed what for an image: a stored one (name or ID;
// its scope is that of the registry name it has) or TRANSPORT:REF, and
// whether the policy accepts it and each of its signatures.
func Verify(ctx context.Context, st *store.Store, name string, o VerifyOptions) (VerifyReport, error) {
	p, err := o.Trust.Load()
	if err != nil {
		return VerifyReport{}, err
	}
	if p == nil {
		p = &policy.Policy{Default: policy.Requirements{&policy.InsecureAcceptAnything{}}}
	}
	img, label, err := verifyInput(ctx, st, name, o)
	if err != nil {
		return VerifyReport{}, err
	}
	rep := VerifyReport{Image: label, ManifestDigest: digest.FromBytes(img.Manifest)}
	reqs, scope := p.For(img.Transport, img.Scope, img.Namespaces)
	rep.Scope = img.Transport + " " + scope
	if scope == "default" {
		rep.Scope = "default"
	}
	for _, r := range reqs {
		rep.Requirements = append(rep.Requirements, r.Type())
	}
	now := time.Now()
	if _, err := p.Evaluate(img, now); err != nil {
		if !errors.Is(err, policy.ErrRejected) && !errors.Is(err, signature.ErrKeyNotFound) {
			return rep, err
		}
		rep.Problem = err.Error()
	} else {
		rep.Accepted = true
	}
	for _, blob := range img.Signatures {
		rep.Signatures = append(rep.Signatures, reportSignature(p, img, blob, now))
	}
	return rep, nil
}

// verifyInput reads the image, its policy identity and signatures.
func verifyInput(ctx context.Context, st *store.Store, name string, o VerifyOptions) (policy.Image, string, error) {
	if IsTransportRef(name) || !isLocal(ctx, st, name) {
		r, err := transport.ParseReference(name)
		if err != nil {
			return policy.Image{}, "", err
		}
		sys := o.System
		if sys == nil {
			sys = &transport.SystemContext{}
		}
		src, err := r.NewSource(ctx, sys)
		if err != nil {
			return policy.Image{}, "", err
		}
		defer src.Close()
		img, err := policyImage(ctx, r, src, nil)
		return img, r.String(), err
	}
	stored, err := st.LookupImage(ctx, name)
	if err != nil {
		return policy.Image{}, "", err
	}
	raw, err := st.ImageManifest(stored)
	if err != nil {
		return policy.Image{}, "", err
	}
	sigs, err := st.Signatures(ctx, stored.ManifestDigest)
	if err != nil {
		return policy.Image{}, "", err
	}
	img := policy.Image{Transport: transport.TransportDocker, Manifest: raw, Signatures: sigs}
	label := stored.ID[:12]
	for _, n := range append([]string{name}, stored.Names...) {
		ref, err := image.ParseReference(n)
		if err != nil || ref.Domain == "" || ref.Domain == "localhost" {
			continue
		}
		ref = ref.DockerNormalized()
		img.Reference = &ref
		img.Scope, img.Namespaces = policy.DockerScope(ref)
		label = ref.String()
		break
	}
	return img, label, nil
}

func isLocal(ctx context.Context, st *store.Store, name string) bool {
	_, err := st.LookupImage(ctx, name)
	return err == nil
}

// reportSignature checks one signature on its own against the policy.
func reportSignature(p *policy.Policy, img policy.Image, blob []byte, now time.Time) SignatureReport {
	var rep SignatureReport
	sig, err := signature.FromBlob(blob)
	if err != nil {
		rep.Format, rep.Problem = "unknown", err.Error()
		return rep
	}
	rep.Format = sig.Format.String()
	switch sig.Format {
	case signature.SimpleSigning:
		if pl, keyID, err := signature.UntrustedSimplePayload(sig); err == nil {
			rep.Signer, rep.DockerReference, rep.ManifestDigest = keyID, pl.DockerReference, pl.ManifestDigest
		} else {
			rep.Signer = keyID
		}
	case signature.Sigstore:
		if pl, err := signature.ParsePayload(sig.Payload, signature.SigstoreType); err == nil {
			rep.DockerReference, rep.ManifestDigest = pl.DockerReference, pl.ManifestDigest
		}
	}
	one := img
	one.Signatures = [][]byte{blob}
	res, err := p.Evaluate(one, now)
	switch {
	case err != nil:
		rep.Problem = err.Error()
	case len(res.Signatures) == 0:
		rep.Problem = "the policy needs no signature here"
	default:
		rep.Accepted = true
		rep.Signer = res.Signatures[0].Signer
	}
	return rep
}
