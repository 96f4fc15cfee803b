package signature_test

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"

	"github.com/kiln-build/kiln/internal/signature"
	"github.com/kiln-build/kiln/internal/signature/signaturetest"
)

var testDigest = digest.FromString("a manifest")

func payload() signature.Payload {
	return signature.Payload{DockerReference: "registry.example/app:1", ManifestDigest: testDigest, Creator: "kiln test", Timestamp: time.Unix(1700000000, 0).UTC()}
}

// TestGPGSignVerify signs with keys Debian's gpg made, read from the
// GnuPG home without an agent, and checks the signatures with gpg itself
// and with the exported public keys.
func TestGPGSignVerify(t *testing.T) {
	h := signaturetest.NewGPGHome(t)
	keys := []signaturetest.Key{
		{Name: "RSA Protected", Algo: "rsa2048", Passphrase: "correct horse"},
		{Name: "Ed Plain", Algo: "ed25519"},
		{Name: "Ed Protected", Algo: "ed25519", Passphrase: "secret"},
	}
	for _, k := range keys {
		t.Run(k.Name, func(t *testing.T) {
			fpr := h.GenerateKey(t, k)
			s, err := signature.LoadGPGSigner(h.Dir, fpr, []byte(k.Passphrase))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.Sign(payload())
			if err != nil {
				t.Fatal(err)
			}
			// gpg checks it and prints the payload.
			out := h.Run(t, sig.Message, "--status-fd", "2", "--decrypt")
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("gpg --decrypt printed %q: %v", out, err)
			}
			crit := got["critical"].(map[string]any)
			if crit["type"] != signature.SimpleSigningType || crit["image"].(map[string]any)["docker-manifest-digest"] != testDigest.String() {
				t.Errorf("payload gpg saw: %s", out)
			}
			kr, err := signature.ReadKeyring(h.Export(t, fpr))
			if err != nil {
				t.Fatal(err)
			}
			v, err := kr.VerifySimple(sig, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			want := payload()
			want.Type = signature.SimpleSigningType
			if diff := cmp.Diff(want, v.Payload); diff != "" || v.Signer != fpr {
				t.Errorf("verified %s (-want +got):\n%s", v.Signer, diff)
			}
			// The keybox itself is a keyring too.
			kbx, err := signature.LoadKeyring(filepath.Join(h.Dir, "pubring.kbx"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := kbx.VerifySimple(sig, time.Now()); err != nil {
				t.Errorf("verifying with pubring.kbx: %v", err)
			}
		})
	}
}

// TestGPGSignedByGPG verifies what `gpg --sign` wrote.
func TestGPGSignedByGPG(t *testing.T) {
	h := signaturetest.NewGPGHome(t)
	fpr := h.GenerateKey(t, signaturetest.Key{Name: "Signer", Algo: "rsa2048"})
	p := payload()
	p.Type = signature.SimpleSigningType
	data, err := p.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	msg := h.Run(t, data, "--sign", "--local-user", fpr)
	sig, err := signature.FromBlob(msg)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := signature.ReadKeyring(h.Export(t, fpr))
	if err != nil {
		t.Fatal(err)
	}
	v, err := kr.VerifySimple(sig, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if v.Signer != fpr || v.Payload.ManifestDigest != testDigest {
		t.Errorf("got %+v", v)
	}
}

func TestGPGBadKeys(t *testing.T) {
	h := signaturetest.NewGPGHome(t)
	fpr := h.GenerateKey(t, signaturetest.Key{Name: "Locked", Algo: "ed25519", Passphrase: "right"})
	other := signaturetest.NewGPGHome(t)
	otherFpr := other.GenerateKey(t, signaturetest.Key{Name: "Other", Algo: "ed25519"})
	expired := h.GenerateKey(t, signaturetest.Key{Name: "Expired", Algo: "ed25519", Expire: "1d", FakedTime: "20200101T000000"})
	revoked := h.GenerateKey(t, signaturetest.Key{Name: "Revoked", Algo: "ed25519"})

	if _, err := signature.LoadGPGSigner(h.Dir, fpr, []byte("wrong")); !errors.Is(err, signature.ErrPassphrase) {
		t.Errorf("wrong passphrase: %v, want ErrPassphrase", err)
	}
	if _, err := signature.LoadGPGSigner(h.Dir, fpr, nil); !errors.Is(err, signature.ErrPassphrase) {
		t.Errorf("no passphrase: %v, want ErrPassphrase", err)
	}
	if _, err := signature.LoadGPGSigner(h.Dir, otherFpr, nil); !errors.Is(err, signature.ErrKeyNotFound) {
		t.Errorf("key of another home: %v, want ErrKeyNotFound", err)
	}
	if _, err := signature.LoadGPGSigner(h.Dir, expired, nil); !errors.Is(err, signature.ErrKeyNotFound) {
		t.Errorf("expired key: %v, want ErrKeyNotFound", err)
	}

	// Signatures made while the keys were good fail once they are not.
	sign := func(fpr string, faked ...string) signature.Signature {
		p := payload()
		p.Type = signature.SimpleSigningType
		data, _ := p.MarshalJSON()
		args := append(faked, "--sign", "--local-user", fpr)
		sig, err := signature.FromBlob(h.Run(t, data, args...))
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	expiredSig := sign(expired, "--faked-system-time", "20200101T000100")
	revokedSig := sign(revoked)
	h.Revoke(t, revoked)
	otherSig := func() signature.Signature {
		s, err := signature.LoadGPGSigner(other.Dir, otherFpr, nil)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := s.Sign(payload())
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}()
	kr, err := signature.ReadKeyring(h.Run(t, nil, "--export"))
	if err != nil {
		t.Fatal(err)
	}
	for name, sig := range map[string]signature.Signature{"expired": expiredSig, "revoked": revokedSig, "unknown key": otherSig} {
		if v, err := kr.VerifySimple(sig, time.Now()); !errors.Is(err, signature.ErrInvalidSignature) {
			t.Errorf("%s: got %+v, %v; want ErrInvalidSignature", name, v, err)
		}
	}
	// Tampered: one byte of the message changed.
	good := sign(fpr2(t, h))
	bad := good
	bad.Message = append([]byte{}, good.Message...)
	bad.Message[len(bad.Message)/2] ^= 1
	kr2, _ := signature.ReadKeyring(h.Run(t, nil, "--export"))
	if _, err := kr2.VerifySimple(good, time.Now()); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	if _, err := kr2.VerifySimple(bad, time.Now()); !errors.Is(err, signature.ErrInvalidSignature) {
		t.Errorf("tampered signature: %v, want ErrInvalidSignature", err)
	}
}

// fpr2 makes one more plain key in h.
func fpr2(t *testing.T, h *signaturetest.GPGHome) string {
	return h.GenerateKey(t, signaturetest.Key{Name: "Plain Two", Algo: "ed25519"})
}

func TestSigstoreSignVerify(t *testing.T) {
	dir := t.TempDir()
	privPath, pubPath := signaturetest.CosignKeyPair(t, dir, "cosign", "pass")
	s, err := signature.LoadSigstoreSigner(privPath, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signature.LoadSigstoreSigner(privPath, []byte("nope")); !errors.Is(err, signature.ErrPassphrase) {
		t.Errorf("wrong passphrase: %v, want ErrPassphrase", err)
	}
	if _, err := signature.LoadSigstoreSigner(filepath.Join(dir, "missing.key"), nil); !errors.Is(err, signature.ErrKeyNotFound) {
		t.Errorf("missing key: %v, want ErrKeyNotFound", err)
	}
	sig, err := s.Sign(payload())
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(pubPath)
	keys, err := signature.ReadSigstoreKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := keys.VerifySigstore(sig, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if v.Payload.ManifestDigest != testDigest || v.Payload.Type != signature.SigstoreType || v.Signer != s.Identity() {
		t.Errorf("got %+v", v)
	}
	// The blob survives the round trip.
	blob, err := sig.Blob()
	if err != nil {
		t.Fatal(err)
	}
	back, err := signature.FromBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sig, back); diff != "" {
		t.Errorf("blob round trip (-want +got):\n%s", diff)
	}
	// Another key, a changed payload, a changed signature: refused.
	_, otherPub := signaturetest.CosignKeyPair(t, dir, "other", "x")
	op, _ := os.ReadFile(otherPub)
	okeys, _ := signature.ReadSigstoreKeys(op)
	if _, err := okeys.VerifySigstore(sig, time.Now()); !errors.Is(err, signature.ErrInvalidSignature) {
		t.Errorf("other key: %v", err)
	}
	tampered := back
	tampered.Payload = []byte(strings.Replace(string(sig.Payload), testDigest.Encoded()[:8], "00000000", 1))
	if _, err := keys.VerifySigstore(tampered, time.Now()); !errors.Is(err, signature.ErrInvalidSignature) {
		t.Errorf("tampered payload: %v", err)
	}
}

// TestCosignKeyFormat decrypts a key kiln reads with a decryption
// written here from the format's description (scrypt, then NaCl
// secretbox over the PKCS#8 key), as a second implementation.
func TestCosignKeyFormat(t *testing.T) {
	dir := t.TempDir()
	privPath, pubPath := signaturetest.CosignKeyPair(t, dir, "k", "pw")
	data, _ := os.ReadFile(privPath)
	block, _ := pem.Decode(data)
	var enc struct {
		KDF struct {
			Name   string
			Params struct{ N, R, P int }
			Salt   []byte
		}
		Cipher struct {
			Name  string
			Nonce []byte
		}
		Ciphertext []byte
	}
	if err := json.Unmarshal(block.Bytes, &enc); err != nil {
		t.Fatal(err)
	}
	if enc.KDF.Name != "scrypt" || enc.Cipher.Name != "nacl/secretbox" {
		t.Fatalf("format %s/%s", enc.KDF.Name, enc.Cipher.Name)
	}
	key, err := scrypt.Key([]byte("pw"), enc.KDF.Salt, enc.KDF.Params.N, enc.KDF.Params.R, enc.KDF.Params.P, 32)
	if err != nil {
		t.Fatal(err)
	}
	var k [32]byte
	var n [24]byte
	copy(k[:], key)
	copy(n[:], enc.Cipher.Nonce)
	der, ok := secretbox.Open(nil, enc.Ciphertext, &n, &k)
	if !ok {
		t.Fatal("secretbox did not open")
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signature.LoadSigstoreSigner(privPath, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	pemPub, _ := s.PublicKeyPEM()
	filePub, _ := os.ReadFile(pubPath)
	derived, err := x509.MarshalPKIXPublicKey(priv.(interface{ Public() crypto.PublicKey }).Public())
	if err != nil {
		t.Fatal(err)
	}
	ours := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: derived})
	if string(pemPub) != string(filePub) || string(ours) != string(filePub) {
		t.Errorf("public keys differ: kiln's\n%s\nthis test's\n%s\nthe file's\n%s", pemPub, ours, filePub)
	}
}

func TestParsePayload(t *testing.T) {
	d := testDigest.String()
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"minimal", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a/b:c"}},"optional":{}}`, true},
		{"optional fields", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a/b:c"}},"optional":{"creator":"x","timestamp":5,"other":[1]}}`, true},
		{"wrong type", `{"critical":{"type":"cosign container image signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a/b:c"}},"optional":{}}`, false},
		{"extra critical field", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a/b:c"},"x":1},"optional":{}}`, false},
		{"duplicate field", `{"critical":{"type":"atomic container signature","type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a/b:c"}},"optional":{}}`, false},
		{"no optional", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a/b:c"}}}`, false},
		{"bad digest", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"sha256:12"},"identity":{"docker-reference":"a/b:c"}},"optional":{}}`, false},
		{"fractional timestamp", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a/b:c"}},"optional":{"timestamp":1.5}}`, false},
		{"trailing data", `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"` + d + `"},"identity":{"docker-reference":"a/b:c"}},"optional":{}} {}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := signature.ParsePayload([]byte(tt.in), signature.SimpleSigningType)
			if got := err == nil; got != tt.ok {
				t.Errorf("ParsePayload ok = %v (%v), want %v", got, err, tt.ok)
			}
			if err != nil && !errors.Is(err, signature.ErrInvalidSignature) {
				t.Errorf("error %v is not ErrInvalidSignature", err)
			}
		})
	}
}
