// Package transporttest starts the real peers that transport tests talk
// to: Debian's docker-registry (plain HTTP, or TLS with htpasswd basic
// auth and a CA for certs.d), and dockerd on its own socket and data
// root. It is for tests only: every helper takes a testing.TB, skips when
// a program is missing, and stops what it started in t.Cleanup.
package transporttest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testenv"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// NeedBinary returns the path of a program, or skips the test (fails it
// in CI): see testenv.NeedBinary.
func NeedBinary(t testing.TB, name string) string {
	t.Helper()
	return testenv.NeedBinary(t, name)
}

// Registry is a running docker-registry.
type Registry struct {
	// Host is 127.0.0.1:PORT.
	Host string
	// CertsDir is a certs.d directory with Host/ca.crt (TLS only).
	CertsDir string
	// User and Pass are the htpasswd credentials (TLS only).
	User, Pass string
}

// StartRegistry starts docker-registry on a free loopback port: plain
// HTTP without auth, or (secure) TLS with htpasswd basic auth.
func StartRegistry(t testing.TB, secure bool) *Registry {
	t.Helper()
	bin := "/usr/bin/docker-registry"
	if _, err := os.Stat(bin); err != nil {
		bin = NeedBinary(t, "docker-registry")
	}
	dir := t.TempDir()
	r := &Registry{Host: fmt.Sprintf("127.0.0.1:%d", FreePort(t))}
	conf := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), r.Host)
	if secure {
		conf += r.setupTLS(t, dir)
	}
	cf := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cf)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting docker-registry: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", r.Host)
		if err == nil {
			c.Close()
			return r
		}
		if i > 100 {
			t.Fatalf("docker-registry did not start: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *Registry) setupTLS(t testing.TB, dir string) string {
	t.Helper()
	htpasswd := NeedBinary(t, "htpasswd")
	r.User, r.Pass = "kiln", "s3cret-Pa55"
	out, err := exec.Command(htpasswd, "-Bbn", r.User, r.Pass).Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	hp := filepath.Join(dir, "htpasswd")
	caPEM, certPEM, keyPEM := MakeCerts(t)
	cert, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	r.CertsDir = filepath.Join(dir, "certs.d")
	for _, f := range []struct {
		path string
		data []byte
	}{{hp, out}, {cert, certPEM}, {key, keyPEM}, {filepath.Join(r.CertsDir, r.Host, "ca.crt"), caPEM}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf(`  tls:
    certificate: %s
    key: %s
auth:
  htpasswd:
    realm: kiln-test
    path: %s
`, cert, key, hp)
}

// MakeCerts returns a CA and a server certificate for 127.0.0.1 and
// localhost signed by it, with the server's key, all PEM.
func MakeCerts(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kiln test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, srv, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
