package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/images"
)

const dpkgStatus = `Package: base-files
Status: install ok installed
Priority: required
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4
`

const apkInstalled = `C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
L:MIT
o:musl

P:busybox
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
`

// TestAttestations: build --provenance --sbom attaches an SLSA
// provenance statement (base by digest, Dockerfile digest, context
// files, ADD URL) and an SPDX SBOM of the dpkg and apk packages as OCI
// referrers; image inspect --attestations shows them, in the store and
// after a push to a registry (referrers tag schema), where the push's
// signing signs them too and skopeo verifies that signature.
func TestAttestations(t *testing.T) {
	s := newSignEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("remote file\n")) }))
	t.Cleanup(srv.Close)
	ctx := t.TempDir()
	df := "FROM " + s.base + "\nCOPY status /var/lib/dpkg/status\nCOPY installed /lib/apk/db/installed\nADD " + srv.URL + "/remote.txt /opt/remote.txt\n"
	must(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df), 0o644))
	must(t, os.WriteFile(filepath.Join(ctx, "status"), []byte(dpkgStatus), 0o644))
	must(t, os.WriteFile(filepath.Join(ctx, "installed"), []byte(apkInstalled), 0o644))
	baseDigest := strings.TrimSpace(runPeer(t, "skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+s.base))

	s.mustKiln("build", "-q", "--tls-verify=false", "--provenance", "--sbom", "-t", "localhost/att", ctx)
	var list []images.Attestation
	decodeJSON(t, s.mustKiln("image", "inspect", "--attestations", "localhost/att"), &list)
	if len(list) != 2 {
		t.Fatalf("%d attestations, want 2: %+v", len(list), list)
	}
	byType := map[string]string{}
	for _, a := range list {
		if a.ArtifactType != "application/vnd.in-toto+json" || a.Statement.Type != "https://in-toto.io/Statement/v1" {
			t.Errorf("attestation %s: artifactType %q, statement type %q", a.Digest, a.ArtifactType, a.Statement.Type)
		}
		b, _ := jsonString(a.Statement.Predicate)
		byType[a.PredicateType] = b
	}
	prov, sbom := byType["https://slsa.dev/provenance/v1"], byType["https://spdx.dev/Document"]
	sum := sha256.Sum256([]byte(df))
	for _, want := range []string{strings.TrimPrefix(baseDigest, "sha256:"), hex.EncodeToString(sum[:]), "context:status", srv.URL + "/remote.txt", "https://github.com/kiln-build/kiln@"} {
		if !strings.Contains(prov, want) {
			t.Errorf("provenance lacks %q:\n%s", want, prov)
		}
	}
	for _, want := range []string{"pkg:deb/debian/base-files@12.4+deb12u5?arch=amd64", "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64", "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64", "pkg:apk/alpine/busybox@1.36.1-r15", `"spdxVersion":"SPDX-2.3"`} {
		if !strings.Contains(sbom, want) {
			t.Errorf("SBOM lacks %q:\n%s", want, sbom)
		}
	}
	if strings.Contains(sbom, "removed-one") {
		t.Errorf("SBOM lists a package that is not installed:\n%s", sbom)
	}

	// Pushed with the image, signed when the push signs.
	dest := s.reg + "/att/app:1"
	if out, errOut, code := s.kilnSigned("push", "--tls-verify=false", "--registries.d", s.registriesD, "--sign-by", s.kilnKey, "--sign-passphrase-file", s.passFile, "localhost/att", "docker://"+dest); code != 0 {
		t.Fatalf("push: %d %s %s", code, out, errOut)
	}
	var remote []images.Attestation
	decodeJSON(t, s.mustKiln("image", "inspect", "--tls-verify=false", "--attestations", "docker://"+dest), &remote)
	if len(remote) != 2 {
		t.Fatalf("%d attestations in the registry, want 2", len(remote))
	}
	for _, a := range remote {
		manifest := filepath.Join(t.TempDir(), "manifest.json")
		must(t, os.WriteFile(manifest, []byte(runPeer(t, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+s.reg+"/att/app@"+a.Digest)), 0o644))
		sig := filepath.Join(s.dir, "sigstore", "att/app@"+strings.Replace(a.Digest, ":", "=", 1), "signature-1")
		if o, err := s.skopeo("", "standalone-verify", manifest, dest, s.kilnKey, sig); err != nil {
			t.Errorf("the signature of attestation %s: %v\n%s", a.Digest, err, o)
		}
	}
	// An unknown scanner is refused.
	s.fails("build", "--sbom", "syft", ctx)
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
