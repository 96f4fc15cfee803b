package policy_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/policy"
	"github.com/kiln-build/kiln/internal/signature"
	"github.com/kiln-build/kiln/internal/signature/signaturetest"
)

// keys are the keys of the policy tests, made once by gpg.
type keys struct {
	dir                                  string
	h                                    *signaturetest.GPGHome
	old, new, other, expired, revoked    string // fingerprints
	oldPub, newPub, otherPub, expiredPub string
	revokedPub                           string
	cosignKey, cosignPub, cosignOtherPub string
}

func makeKeys(t *testing.T) *keys {
	t.Helper()
	k := &keys{dir: t.TempDir(), h: signaturetest.NewGPGHome(t)}
	gen := func(name string, extra ...string) string {
		key := signaturetest.Key{Name: name, Algo: "ed25519"}
		if len(extra) == 2 {
			key.Expire, key.FakedTime = extra[0], extra[1]
		}
		return k.h.GenerateKey(t, key)
	}
	k.old, k.new, k.other = gen("Old Key"), gen("New Key"), gen("Other Key")
	k.expired = gen("Expired Key", "1d", "20200101T000000")
	k.revoked = gen("Revoked Key")
	k.oldPub, k.newPub, k.otherPub = k.h.WritePublicKey(t, k.dir, k.old), k.h.WritePublicKey(t, k.dir, k.new), k.h.WritePublicKey(t, k.dir, k.other)
	k.expiredPub = k.h.WritePublicKey(t, k.dir, k.expired)
	k.cosignKey, k.cosignPub = signaturetest.CosignKeyPair(t, k.dir, "cosign", "pw")
	_, k.cosignOtherPub = signaturetest.CosignKeyPair(t, k.dir, "cosign-other", "pw")
	return k
}

// gpgSign has gpg sign a simple-signing payload with fpr (at faked
// time, when given).
func (k *keys) gpgSign(t *testing.T, fpr, ref string, d digest.Digest, faked string) []byte {
	t.Helper()
	data, err := signature.Payload{Type: signature.SimpleSigningType, DockerReference: ref, ManifestDigest: d}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--sign", "--local-user", fpr}
	if faked != "" {
		args = append([]string{"--faked-system-time", faked}, args...)
	}
	return k.h.Run(t, data, args...)
}

func (k *keys) cosignSign(t *testing.T, ref string, d digest.Digest) []byte {
	t.Helper()
	s, err := signature.LoadSigstoreSigner(k.cosignKey, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(signature.Payload{DockerReference: ref, ManifestDigest: d})
	if err != nil {
		t.Fatal(err)
	}
	b, err := sig.Blob()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dockerImage(t *testing.T, ref string, manifest []byte, sigs ...[]byte) policy.Image {
	t.Helper()
	r, err := image.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	r = r.DockerNormalized()
	scope, ns := policy.DockerScope(r)
	return policy.Image{Transport: "docker", Scope: scope, Namespaces: ns, Reference: &r, Manifest: manifest, Signatures: sigs}
}

func TestEvaluate(t *testing.T) {
	k := makeKeys(t)
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}`)
	d := digest.FromBytes(manifest)
	otherDigest := digest.FromString("another image")
	const app = "registry.example/team/app:1"

	oldSig := k.gpgSign(t, k.old, app, d, "")
	newSig := k.gpgSign(t, k.new, app, d, "")
	otherSig := k.gpgSign(t, k.other, app, d, "")
	otherImageSig := k.gpgSign(t, k.old, app, otherDigest, "")
	tag2Sig := k.gpgSign(t, k.old, "registry.example/team/app:2", d, "")
	otherRepoSig := k.gpgSign(t, k.old, "registry.example/team/tool:1", d, "")
	upstreamSig := k.gpgSign(t, k.old, "docker.io/library/app:1", d, "")
	expiredSig := k.gpgSign(t, k.expired, app, d, "20200101T000100")
	revokedSig := k.gpgSign(t, k.revoked, app, d, "")
	k.h.Revoke(t, k.revoked)
	k.revokedPub = k.h.WritePublicKey(t, k.dir, k.revoked)
	cosignSig := k.cosignSign(t, app, d)
	oldKeyData := base64.StdEncoding.EncodeToString(k.h.Export(t, k.old))

	signedBy := func(key string, identity ...string) string {
		id := ""
		if len(identity) > 0 {
			id = `,"signedIdentity":` + identity[0]
		}
		return `{"type":"signedBy","keyType":"GPGKeys","keyPath":"` + key + `"` + id + `}`
	}
	def := func(reqs ...string) string { return `{"default":[` + strings.Join(reqs, ",") + `]}` }
	tampered := append([]byte{}, manifest...)
	tampered[len(tampered)-2] = ' '

	tests := []struct {
		name, policy string
		img          policy.Image
		// want is "accept", "reject" (ErrRejected) or "key" (ErrKeyNotFound).
		want string
	}{
		{"accept anything unsigned", def(`{"type":"insecureAcceptAnything"}`), dockerImage(t, app, manifest), "accept"},
		{"reject", def(`{"type":"reject"}`), dockerImage(t, app, manifest, oldSig), "reject"},
		{"signedBy good", def(signedBy(k.oldPub)), dockerImage(t, app, manifest, oldSig), "accept"},
		{"signedBy unsigned", def(signedBy(k.oldPub)), dockerImage(t, app, manifest), "reject"},
		{"signedBy by an untrusted key", def(signedBy(k.oldPub)), dockerImage(t, app, manifest, otherSig), "reject"},
		{"signedBy one good among bad", def(signedBy(k.oldPub)), dockerImage(t, app, manifest, otherSig, []byte("garbage"), oldSig), "accept"},
		{"signature for another image", def(signedBy(k.oldPub)), dockerImage(t, app, manifest, otherImageSig), "reject"},
		{"tampered manifest", def(signedBy(k.oldPub)), dockerImage(t, app, tampered, oldSig), "reject"},
		{"expired key", def(signedBy(k.expiredPub)), dockerImage(t, app, manifest, expiredSig), "reject"},
		{"revoked key", def(signedBy(k.revokedPub)), dockerImage(t, app, manifest, revokedSig), "reject"},
		{"keyData", def(`{"type":"signedBy","keyType":"GPGKeys","keyData":"` + oldKeyData + `"}`), dockerImage(t, app, manifest, oldSig), "accept"},
		{"missing key file", def(signedBy(filepath.Join(k.dir, "missing.gpg"))), dockerImage(t, app, manifest, oldSig), "key"},
		// A key rotation: both keys during the changeover, then the new one.
		{"rotation: old key during changeover", def(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":["` + k.oldPub + `","` + k.newPub + `"]}`), dockerImage(t, app, manifest, oldSig), "accept"},
		{"rotation: new key during changeover", def(`{"type":"signedBy","keyType":"GPGKeys","keyPaths":["` + k.oldPub + `","` + k.newPub + `"]}`), dockerImage(t, app, manifest, newSig), "accept"},
		{"rotation: old key after", def(signedBy(k.newPub)), dockerImage(t, app, manifest, oldSig), "reject"},
		{"rotation: new key after", def(signedBy(k.newPub)), dockerImage(t, app, manifest, newSig), "accept"},
		// signedIdentity rules.
		{"default identity, other tag", def(signedBy(k.oldPub)), dockerImage(t, app, manifest, tag2Sig), "reject"},
		{"default identity, by digest", def(signedBy(k.oldPub)), dockerImage(t, "registry.example/team/app@"+d.String(), manifest, tag2Sig), "accept"},
		{"default identity, by digest, other repo", def(signedBy(k.oldPub)), dockerImage(t, "registry.example/team/app@"+d.String(), manifest, otherRepoSig), "reject"},
		{"matchExact same", def(signedBy(k.oldPub, `{"type":"matchExact"}`)), dockerImage(t, app, manifest, oldSig), "accept"},
		{"matchExact by digest", def(signedBy(k.oldPub, `{"type":"matchExact"}`)), dockerImage(t, "registry.example/team/app@"+d.String(), manifest, oldSig), "reject"},
		{"matchRepository other tag", def(signedBy(k.oldPub, `{"type":"matchRepository"}`)), dockerImage(t, app, manifest, tag2Sig), "accept"},
		{"matchRepository other repo", def(signedBy(k.oldPub, `{"type":"matchRepository"}`)), dockerImage(t, app, manifest, otherRepoSig), "reject"},
		{"exactReference", def(signedBy(k.oldPub, `{"type":"exactReference","dockerReference":"registry.example/team/tool:1"}`)), dockerImage(t, app, manifest, otherRepoSig), "accept"},
		{"exactReference mismatch", def(signedBy(k.oldPub, `{"type":"exactReference","dockerReference":"registry.example/team/tool:2"}`)), dockerImage(t, app, manifest, otherRepoSig), "reject"},
		{"exactRepository", def(signedBy(k.oldPub, `{"type":"exactRepository","dockerRepository":"registry.example/team/tool"}`)), dockerImage(t, app, manifest, otherRepoSig), "accept"},
		{"exactRepository mismatch", def(signedBy(k.oldPub, `{"type":"exactRepository","dockerRepository":"registry.example/team/app"}`)), dockerImage(t, app, manifest, otherRepoSig), "reject"},
		{"remapIdentity", def(signedBy(k.oldPub, `{"type":"remapIdentity","prefix":"mirror.example/lib","signedPrefix":"docker.io/library"}`)), dockerImage(t, "mirror.example/lib/app:1", manifest, upstreamSig), "accept"},
		{"remapIdentity outside the prefix", def(signedBy(k.oldPub, `{"type":"remapIdentity","prefix":"mirror.example/other","signedPrefix":"docker.io/library"}`)), dockerImage(t, "mirror.example/lib/app:1", manifest, upstreamSig), "reject"},
		// sigstoreSigned.
		{"sigstoreSigned good", def(`{"type":"sigstoreSigned","keyPath":"` + k.cosignPub + `"}`), dockerImage(t, app, manifest, cosignSig), "accept"},
		{"sigstoreSigned other key", def(`{"type":"sigstoreSigned","keyPath":"` + k.cosignOtherPub + `"}`), dockerImage(t, app, manifest, cosignSig), "reject"},
		{"sigstoreSigned with only a GPG signature", def(`{"type":"sigstoreSigned","keyPath":"` + k.cosignPub + `"}`), dockerImage(t, app, manifest, oldSig), "reject"},
		{"sigstoreSigned tampered", def(`{"type":"sigstoreSigned","keyPath":"` + k.cosignPub + `"}`), dockerImage(t, app, tampered, cosignSig), "reject"},
		{"both kinds needed, both there", def(signedBy(k.oldPub), `{"type":"sigstoreSigned","keyPath":"`+k.cosignPub+`"}`), dockerImage(t, app, manifest, oldSig, cosignSig), "accept"},
		{"both kinds needed, one there", def(signedBy(k.oldPub), `{"type":"sigstoreSigned","keyPath":"`+k.cosignPub+`"}`), dockerImage(t, app, manifest, cosignSig), "reject"},
		// Scopes: the most specific wins.
		{"namespace scope over default", `{"default":[{"type":"reject"}],"transports":{"docker":{"registry.example/team":[{"type":"insecureAcceptAnything"}]}}}`, dockerImage(t, app, manifest), "accept"},
		{"image scope over namespace", `{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"registry.example/team":[{"type":"insecureAcceptAnything"}],"registry.example/team/app:1":[{"type":"reject"}]}}}`, dockerImage(t, app, manifest), "reject"},
		{"repository scope over registry", `{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"registry.example":[{"type":"insecureAcceptAnything"}],"registry.example/team/app":[` + signedBy(k.oldPub) + `]}}}`, dockerImage(t, app, manifest), "reject"},
		{"wildcard domain", `{"default":[{"type":"reject"}],"transports":{"docker":{"*.example":[{"type":"insecureAcceptAnything"}]}}}`, dockerImage(t, app, manifest), "accept"},
		{"transport default", `{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"":[{"type":"reject"}]}}}`, dockerImage(t, app, manifest), "reject"},
		{"other transport's scope", `{"default":[{"type":"insecureAcceptAnything"}],"transports":{"oci":{"":[{"type":"reject"}]}}}`, dockerImage(t, app, manifest), "accept"},
		{"dir image with no reference", def(signedBy(k.oldPub)), policy.Image{Transport: "dir", Scope: "/x", Manifest: manifest, Signatures: [][]byte{oldSig}}, "reject"},
		{"dir image, exactReference", def(signedBy(k.oldPub, `{"type":"exactReference","dockerReference":"`+app+`"}`)), policy.Image{Transport: "dir", Scope: "/x", Manifest: manifest, Signatures: [][]byte{oldSig}}, "accept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.Parse([]byte(tt.policy))
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Evaluate(tt.img, time.Now())
			got := "accept"
			switch {
			case errors.Is(err, policy.ErrRejected):
				got = "reject"
			case errors.Is(err, signature.ErrKeyNotFound):
				got = "key"
			case err != nil:
				got = "error: " + err.Error()
			}
			if got != tt.want {
				t.Errorf("got %s (%v), want %s", got, err, tt.want)
			}
			if got == "accept" && strings.Contains(tt.policy, "signedBy") && len(res.Signatures) == 0 {
				t.Errorf("accepted without a signature: %+v", res)
			}
		})
	}
}

// TestUnsupported: requirements kiln cannot check parse, reject the
// images of their scope only, and are written back unchanged.
func TestUnsupported(t *testing.T) {
	in := `{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"quay.io":[{"type":"sigstoreSigned","fulcio":{"caPath":"/ca.pem","oidcIssuer":"https://x","subjectEmail":"a@b"},"rekorPublicKeyPath":"/rekor.pub"}],"x509.example":[{"type":"signedBy","keyType":"X509Certificates","keyPath":"/a"}]}}}`
	p, err := policy.Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	for ref, wantErr := range map[string]bool{"quay.io/a/b:1": true, "x509.example/a:1": true, "docker.io/library/busybox:latest": false} {
		_, err := p.Evaluate(dockerImage(t, ref, []byte("{}")), time.Now())
		if (err != nil) != wantErr || err != nil && !errors.Is(err, policy.ErrRejected) {
			t.Errorf("%s: %v, want rejected=%v", ref, err, wantErr)
		}
	}
	out, err := p.MarshalIndent()
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	json.Unmarshal([]byte(in), &a)
	json.Unmarshal(out, &b)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]string{
		"no default":            `{"transports":{}}`,
		"unknown field":         `{"default":[{"type":"reject"}],"extra":1}`,
		"empty list":            `{"default":[]}`,
		"unknown type":          `{"default":[{"type":"acceptSome"}]}`,
		"reject with a field":   `{"default":[{"type":"reject","keyPath":"/x"}]}`,
		"two key sources":       `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/a","keyData":"eA=="}]}`,
		"no key":                `{"default":[{"type":"signedBy","keyType":"GPGKeys"}]}`,
		"no keyType":            `{"default":[{"type":"signedBy","keyPath":"/a"}]}`,
		"bad identity":          `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/a","signedIdentity":{"type":"matchAll"}}]}`,
		"identity extra field":  `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/a","signedIdentity":{"type":"matchExact","prefix":"x"}}]}`,
		"exactReference no tag": `{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/a","signedIdentity":{"type":"exactReference","dockerReference":"a/b"}}]}`,
		"relative dir scope":    `{"default":[{"type":"reject"}],"transports":{"dir":{"rel/path":[{"type":"reject"}]}}}`,
		"not JSON":              `default: reject`,
		"trailing data":         `{"default":[{"type":"reject"}]} {}`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := policy.Parse([]byte(in)); !errors.Is(err, policy.ErrInvalidPolicy) {
				t.Errorf("Parse = %v, want ErrInvalidPolicy", err)
			}
		})
	}
}

// TestRoundTrip parses containers/image's own example policy and writes
// it back unchanged in meaning.
func TestRoundTrip(t *testing.T) {
	in := `{
    "default": [{"type": "reject"}],
    "transports": {
        "docker": {
            "registry.example/app": [{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": ["/a.gpg", "/b.gpg"], "signedIdentity": {"type": "remapIdentity", "prefix": "mirror.example", "signedPrefix": "registry.example"}}],
            "registry.example": [{"type": "sigstoreSigned", "keyPath": "/cosign.pub", "signedIdentity": {"type": "matchRepository"}}],
            "docker.io": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": "eGtleQ=="}],
            "": [{"type": "insecureAcceptAnything"}]
        },
        "dir": {"": [{"type": "insecureAcceptAnything"}]}
    }
}`
	p, err := policy.Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.MarshalIndent()
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	json.Unmarshal([]byte(in), &a)
	json.Unmarshal(out, &b)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
}

func TestSetAndDescribe(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k.gpg")
	os.WriteFile(key, nil, 0o644)
	p, err := policy.Parse([]byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		scope string
		t     policy.TrustType
		keys  []string
	}{
		{"default", policy.TrustReject, nil},
		{"docker.io", policy.TrustAccept, nil},
		{"registry.example/app", policy.TrustSignedBy, []string{key}},
		{"registry.example/rotating", policy.TrustSignedBy, []string{key, key + ".new"}},
	} {
		if err := p.Set(step.scope, step.t, step.keys); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Set("registry.example/x", policy.TrustSignedBy, nil); err == nil {
		t.Error("signedBy without keys was accepted")
	}
	var got []string
	for _, e := range p.Describe() {
		got = append(got, e.Transport+" "+e.RepoName+" "+e.Type+" "+strings.Join(e.Keys, ","))
	}
	want := []string{
		"all default reject ",
		"repository docker.io accept ",
		"repository registry.example/app signed " + key,
		"repository registry.example/rotating signed " + key + "," + key + ".new",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
	// What Set wrote parses again.
	out, _ := p.MarshalIndent()
	if _, err := policy.Parse(out); err != nil {
		t.Errorf("written policy does not parse: %v\n%s", err, out)
	}
}

func TestDockerScope(t *testing.T) {
	r, _ := image.ParseReference("registry.example.com:5000/ns/app:1")
	scope, ns := policy.DockerScope(r)
	want := []string{"registry.example.com:5000/ns/app", "registry.example.com:5000/ns", "registry.example.com:5000", "*.example.com", "*.com"}
	if scope != "registry.example.com:5000/ns/app:1" || !cmp.Equal(ns, want) {
		t.Errorf("DockerScope = %q %q, want %q", scope, ns, want)
	}
}

// TestRejectWords: a policy that rejects says so in containers/image's
// words too, which scripts grep ("Source image rejected: Running image
// docker://... is rejected by policy.").
func TestRejectWords(t *testing.T) {
	p, err := policy.Parse([]byte(`{"default":[{"type":"reject"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Evaluate(dockerImage(t, "alpine", []byte("{}")), time.Now())
	want := "Source image rejected: Running image docker://docker.io/library/alpine:latest is rejected by policy."
	if !errors.Is(err, policy.ErrRejected) || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to contain %q", err, want)
	}
}
