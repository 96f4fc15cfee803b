package attest_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/attest"
)

func TestPackages(t *testing.T) {
	dpkg := "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 2\n\nPackage: b\nStatus: install ok installed\nVersion: 3\nArchitecture: all\n"
	apk := "P:musl\nV:1.2\nA:x86_64\nL:MIT\n\nP:zlib\nV:1.3\nA:x86_64\n"
	got := append(attest.ParseDpkgStatus([]byte(dpkg)), attest.ParseApkInstalled([]byte(apk))...)
	var purls []string
	for _, p := range got {
		purls = append(purls, p.PURL())
	}
	want := []string{"pkg:deb/debian/a@1?arch=amd64", "pkg:deb/debian/b@3?arch=all", "pkg:apk/alpine/musl@1.2?arch=x86_64", "pkg:apk/alpine/zlib@1.3?arch=x86_64"}
	if diff := cmp.Diff(want, purls); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
}

func TestPackUnpack(t *testing.T) {
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1}
	s := attest.SBOM("img", subject.Digest, nil, time.Unix(0, 0), "kiln")
	a, err := attest.Pack(s, subject)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(a.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.Subject == nil || m.Subject.Digest != subject.Digest || m.ArtifactType != "application/vnd.in-toto+json" || m.Config.MediaType != "application/vnd.oci.empty.v1+json" {
		t.Errorf("manifest %s", a.Manifest)
	}
	for d, b := range a.Blobs {
		if digest.FromBytes(b) != d {
			t.Errorf("blob %s does not hash to its name", d)
		}
	}
	back, err := attest.Unpack(a.Manifest, a.Blobs)
	if err != nil {
		t.Fatal(err)
	}
	if back.PredicateType != attest.PredicateSPDX || back.Subject[0].Digest["sha256"] != subject.Digest.Encoded() {
		t.Errorf("unpacked %+v", back)
	}
}

func TestProvenance(t *testing.T) {
	dir := t.TempDir()
	df := []byte("FROM scratch\nADD https://example.invalid/a.tar /\nADD --checksum=sha256:" + strings.Repeat("ab", 32) + " https://example.invalid/b /\nCOPY . /\n")
	s, err := attest.Provenance("img", digest.FromString("m"), attest.ProvenanceInput{
		BuilderID: "kiln", Dockerfile: df, DockerfileName: "Dockerfile", ContextDir: dir,
		Args: map[string]string{"A": "1"}, Bases: []attest.Base{{Ref: "busybox", Digest: digest.FromString("b")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s)
	for _, want := range []string{`"buildType":"` + attest.BuildType, `"uri":"https://example.invalid/a.tar"`, strings.Repeat("ab", 32), digest.FromString("b").Encoded(), `"buildArgs":{"A":"1"}`, `"id":"kiln"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("provenance lacks %s:\n%s", want, b)
		}
	}
}
