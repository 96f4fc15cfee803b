package signaturetest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// A second implementation of cosign's signature layout, for tests: the
// registry is read and written with go-containerregistry (what cosign
// uses), payloads are sigstore's payload.Cosign, the cryptography is the
// standard library's ECDSA. Nothing here is kiln's code.

const (
	cosignPayloadType = "application/vnd.dev.cosign.simplesigning.v1+json"
	cosignSigKey      = "dev.cosignproject.cosign/signature"
)

// signatureTag is cosign's "sha256-HEX.sig" of the image digest dig in
// repo (host/path on a plain-HTTP registry).
func signatureTag(t testing.TB, repo, dig string) name.Tag {
	t.Helper()
	d, err := name.NewDigest(repo+"@"+dig, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(repo+":sha256-"+d.DigestStr()[len("sha256:"):]+".sig", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// CosignVerify reads the cosign signatures of repo@dig from the
// registry and returns the payloads whose signature the ECDSA public key
// in pubPath verifies; it fails t when there are none.
func CosignVerify(t testing.TB, repo, dig, pubPath string) []payload.Cosign {
	t.Helper()
	pemBytes, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(signatureTag(t, repo, dig))
	if err != nil {
		t.Fatalf("reading the signature image: %v", err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []payload.Cosign
	for i, l := range layers {
		if m.Layers[i].MediaType != cosignPayloadType {
			continue
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		sig, err := base64.StdEncoding.DecodeString(m.Layers[i].Annotations[cosignSigKey])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), sum[:], sig) {
			continue
		}
		var p payload.Cosign
		if err := p.UnmarshalJSON(data); err != nil {
			t.Fatalf("parsing payload %s: %v", data, err)
		}
		if p.Image.DigestStr() != dig {
			t.Fatalf("payload for %s, want %s", p.Image.DigestStr(), dig)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Fatalf("no cosign signature of %s@%s verifies with %s", repo, dig, pubPath)
	}
	return out
}

// CosignSign signs repo@dig as cosign does (the payload names the
// repository) with the encrypted private key at privPath, and pushes the
// signature image to the sha256-HEX.sig tag.
func CosignSign(t testing.TB, repo, dig, privPath, passphrase string) {
	t.Helper()
	pemBytes, err := os.ReadFile(privPath)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, func(bool) ([]byte, error) { return []byte(passphrase), nil })
	if err != nil {
		t.Fatal(err)
	}
	d, err := name.NewDigest(repo+"@"+dig, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	data, err := payload.Cosign{Image: d}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	sig, err := ecdsa.SignASN1(rand.Reader, priv.(*ecdsa.PrivateKey), sum[:])
	if err != nil {
		t.Fatal(err)
	}
	layer := static.NewLayer(data, types.MediaType(cosignPayloadType))
	img, err := mutate.Append(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), mutate.Addendum{
		Layer:       layer,
		Annotations: map[string]string{cosignSigKey: base64.StdEncoding.EncodeToString(sig)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(signatureTag(t, repo, dig), img); err != nil {
		t.Fatalf("pushing the signature: %v", err)
	}
}
