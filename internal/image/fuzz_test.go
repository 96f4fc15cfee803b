package image

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Documents and names come from registries, archives and users: the
// parsers must never panic, and what they accept must survive the trip
// back to bytes and through the parser again unchanged.

const fuzzDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"busybox", "localhost/busybox", "localhost:5000/a/b:v1", "quay.io/x/y@" + fuzzDigest,
		"x/y:t@" + fuzzDigest, "127.0.0.1:5000/hello", "[::1]:5000/x:y", "localhost:5000",
		"a__b/c--d/e.f:" + strings.Repeat("t", 128), "docker.io/library/busybox:latest",
		"Busybox", "a//b", "a:b:c", "x@sha256:12", "-x", "a/b:", "host:port/x", "x@sha512:" + strings.Repeat("a", 128),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			if !errors.Is(err, ErrBadReference) {
				t.Fatalf("ParseReference(%q): %v does not wrap ErrBadReference", s, err)
			}
			return
		}
		if got := r.String(); got != s {
			t.Errorf("ParseReference(%q).String() = %q", s, got)
		}
		checkReparse(t, r)
		checkReparse(t, r.Normalized())
		cands, err := LocalCandidates(s)
		if err != nil {
			t.Fatalf("LocalCandidates(%q): %v after ParseReference accepted it", s, err)
		}
		for _, c := range cands {
			if _, err := ParseReference(c); err != nil {
				t.Errorf("LocalCandidates(%q) gave %q: %v", s, c, err)
			}
		}
	})
}

// checkReparse checks that r's text parses back to r.
func checkReparse(t *testing.T, r Reference) {
	t.Helper()
	got, err := ParseReference(r.String())
	if err != nil {
		t.Fatalf("ParseReference(%q) (from %#v): %v", r.String(), r, err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("ParseReference(%q) (-want +got):\n%s", r.String(), diff)
	}
}

func FuzzParseManifest(f *testing.F) {
	cfg := ocispec.Descriptor{MediaType: MediaTypeOCIConfig, Digest: fuzzDigest, Size: 2}
	layers := []ocispec.Descriptor{{MediaType: MediaTypeOCILayerGz, Digest: fuzzDigest, Size: 10, Annotations: map[string]string{"a": "b"}}}
	for _, format := range []Format{FormatOCI, FormatDocker} {
		raw, err := NewManifest(format, cfg, layers, map[string]string{"org.opencontainers.image.created": "now"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, s := range []string{
		`{}`, `{"schemaVersion":2,"config":{"digest":"` + fuzzDigest + `"},"layers":null}`,
		`{"mediaType":"application/vnd.oci.image.index.v1+json"}`, `{"config":{"digest":"sha256:../../etc"}}`,
		`{"layers":[{"digest":"sha256:` + strings.Repeat("0", 64) + `","size":-1,"urls":["http://x"],"data":"AAAA"}]}`,
		`{"config":{"digest":"` + fuzzDigest + `","platform":{"os":"linux","architecture":"amd64","os.features":["x"]}}}`,
		`{"subject":{"digest":"` + fuzzDigest + `"},"artifactType":"x","mediaType":"application/vnd.docker.distribution.manifest.v2+json"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseManifest(raw)
		if err != nil {
			return
		}
		if !IsManifest(m.MediaType) {
			t.Errorf("accepted media type %q", m.MediaType)
		}
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if err := d.Digest.Validate(); err != nil {
				t.Errorf("accepted digest %q: %v", d.Digest, err)
			}
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshalling a parsed manifest: %v", err)
		}
		m2, err := ParseManifest(again)
		if err != nil {
			t.Fatalf("parsing a marshalled manifest %s: %v", again, err)
		}
		if diff := cmp.Diff(m, m2, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("manifest changed on the round trip (-first +second):\n%s", diff)
		}
		f := FormatOCI
		if m.MediaType == MediaTypeDockerManifest {
			f = FormatDocker
		}
		rebuilt, err := NewManifest(f, m.Config, m.Layers, m.Annotations)
		if err != nil {
			t.Fatalf("NewManifest from a parsed manifest: %v", err)
		}
		if _, err := ParseManifest(rebuilt); err != nil {
			t.Errorf("parsing %s: %v", rebuilt, err)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"rootfs":{"type":"layers","diff_ids":["` + fuzzDigest + `"]}}`,
		`{"created":"2024-01-02T03:04:05.123456789+01:00","architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"OnBuild":["RUN x"],"Shell":["/bin/sh","-c"],"ExposedPorts":{"80/tcp":{}},"Labels":{"a":"b"}},"history":[{"created":"0001-01-01T00:00:00Z","empty_layer":true}]}`,
		`{"created":"9999-12-31T23:59:59-23:59","rootfs":{"diff_ids":null}}`,
		`{"created":"0000-01-01T00:00:00+01:00"}`,
		`{"rootfs":{"diff_ids":["sha256:bad"]}}`,
		`{"container_config":{"Cmd":["x"]},"config":{"Volumes":{"/v":{}}}}`,
		`{"config":{"Env":["\u0000","a=b=c"]},"os.version":"10.0","variant":"v8"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseConfig(raw)
		if err != nil {
			return
		}
		for _, d := range c.RootFS.DiffIDs {
			if err := d.Validate(); err != nil {
				t.Errorf("accepted diff ID %q: %v", d, err)
			}
		}
		clone := c.Clone() // panics when the config cannot make the round trip
		if diff := cmp.Diff(c, clone, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Clone differs (-config +clone):\n%s", diff)
		}
		for _, format := range []Format{FormatDocker, FormatOCI} {
			b, err := c.Marshal(format)
			if err != nil {
				t.Fatalf("marshalling a parsed config as %v: %v", format, err)
			}
			c2, err := ParseConfig(b)
			if err != nil {
				t.Fatalf("parsing a config marshalled as %v (%s): %v", format, b, err)
			}
			want := c
			if format == FormatOCI {
				want = ociOnly(c)
			}
			if diff := cmp.Diff(want, c2, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("config changed on the round trip as %v (-first +second):\n%s", format, diff)
			}
			if format == FormatOCI && len(c2.DockerOnlyFields()) > 0 {
				t.Errorf("an OCI config kept Docker-only fields %v", c2.DockerOnlyFields())
			}
		}
	})
}

// ociOnly is c without what the OCI format cannot hold.
func ociOnly(c *Config) *Config {
	o := c.Clone()
	cc := &o.Config
	cc.Healthcheck, cc.OnBuild, cc.Shell, cc.Hostname, cc.Domainname = nil, nil, nil, "", ""
	cc.Image = ""
	o.Container, o.ContainerConfig, o.DockerVersion, o.Comment = "", nil, "", ""
	return o
}
