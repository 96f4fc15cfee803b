// Package signaturetest makes keys for tests with real tools: GnuPG homes
// whose keys Debian's gpg generated (and that skopeo can sign with), and
// cosign-format key pairs. For tests only.
package signaturetest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"

	"github.com/kiln-build/kiln/internal/testenv"
)

// GPGHome is a GnuPG home directory of a test; its agent is stopped when
// the test ends.
type GPGHome struct {
	Dir string
	gpg string
}

// NewGPGHome makes an empty GnuPG home (a short path: the agent's socket
// must fit in a sockaddr).
func NewGPGHome(t testing.TB) *GPGHome {
	t.Helper()
	gpg := testenv.NeedBinary(t, "gpg")
	dir, err := os.MkdirTemp("", "kiln-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h := &GPGHome{Dir: dir, gpg: gpg}
	t.Cleanup(func() {
		c := exec.Command("gpgconf", "--kill", "all")
		c.Env = h.Env()
		_ = c.Run()
		os.RemoveAll(dir)
	})
	return h
}

// Env is the environment that points gpg (and skopeo's gpgme) here.
func (h *GPGHome) Env() []string { return append(os.Environ(), "GNUPGHOME="+h.Dir) }

// Run runs gpg in batch mode with args and returns its standard output.
func (h *GPGHome) Run(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	out, err := h.TryRun(stdin, args...)
	if err != nil {
		t.Fatalf("gpg %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// TryRun is Run returning the error (with gpg's standard error in it).
func (h *GPGHome) TryRun(stdin []byte, args ...string) ([]byte, error) {
	c := exec.Command(h.gpg, append([]string{"--batch", "--no-tty", "--pinentry-mode", "loopback"}, args...)...)
	c.Env = h.Env()
	c.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return stdout.Bytes(), &exec.ExitError{ProcessState: c.ProcessState, Stderr: stderr.Bytes()}
	}
	return stdout.Bytes(), nil
}

// Key says what key GenerateKey makes.
type Key struct {
	// Name is the user ID's name; its e-mail is NAME@example.com.
	Name string
	// Algo is gpg's algorithm name: "rsa2048", "ed25519", …
	Algo string
	// Passphrase protects the private key; "" leaves it unprotected.
	Passphrase string
	// Expire is gpg's expiry ("never", "1d", an ISO date).
	Expire string
	// FakedTime, when set, is the time gpg believes it is
	// ("20200101T000000"): a key made in the past that has expired.
	FakedTime string
}

// GenerateKey makes a signing key with gpg and returns its fingerprint.
func (h *GPGHome) GenerateKey(t testing.TB, k Key) string {
	t.Helper()
	if k.Expire == "" {
		k.Expire = "never"
	}
	args := []string{"--passphrase", k.Passphrase}
	if k.FakedTime != "" {
		args = append(args, "--faked-system-time", k.FakedTime)
	}
	uid := k.Name + " <" + strings.ToLower(strings.ReplaceAll(k.Name, " ", ".")) + "@example.com>"
	h.Run(t, nil, append(args, "--quick-gen-key", uid, k.Algo, "sign", k.Expire)...)
	out := h.Run(t, nil, "--with-colons", "--list-keys", uid)
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return f[9]
		}
	}
	t.Fatalf("gpg listed no fingerprint for %s:\n%s", uid, out)
	return ""
}

// Export returns the public key of fpr as `gpg --export` writes it.
func (h *GPGHome) Export(t testing.TB, fpr string) []byte {
	t.Helper()
	return h.Run(t, nil, "--export", fpr)
}

// WritePublicKey exports fpr's public key to a file in dir and returns
// its path.
func (h *GPGHome) WritePublicKey(t testing.TB, dir, fpr string) string {
	t.Helper()
	p := filepath.Join(dir, fpr+".gpg")
	if err := os.WriteFile(p, h.Export(t, fpr), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Revoke revokes fpr with the revocation certificate gpg made with it.
func (h *GPGHome) Revoke(t testing.TB, fpr string) {
	t.Helper()
	cert, err := os.ReadFile(filepath.Join(h.Dir, "openpgp-revocs.d", fpr+".rev"))
	if err != nil {
		t.Fatal(err)
	}
	cert = bytes.ReplaceAll(cert, []byte("\n:-----BEGIN"), []byte("\n-----BEGIN"))
	h.Run(t, cert, "--import")
}

// CosignKeyPair makes an ECDSA P-256 key pair in cosign's format: the
// private key encrypted with passphrase (scrypt and NaCl secretbox, the
// go-securesystemslib code cosign uses) as "ENCRYPTED SIGSTORE PRIVATE
// KEY", and the public key as "PUBLIC KEY". It writes them to dir as
// NAME.key and NAME.pub and returns their paths.
func CosignKeyPair(t testing.TB, dir, name, passphrase string) (privPath, pubPath string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := encrypted.Encrypt(der, []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	privPath, pubPath = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: enc}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return privPath, pubPath
}
