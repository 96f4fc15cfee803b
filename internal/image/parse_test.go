package image

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
)

func TestParseReferenceEdges(t *testing.T) {
	tests := []struct {
		in   string
		want Reference
	}{
		{"localhost:5000", Reference{Path: "localhost", Tag: "5000"}}, // as Docker reads it
		{"[::1]:5000/x:y", Reference{Domain: "[::1]:5000", Path: "x", Tag: "y"}},
		{"host.example/a/b/c", Reference{Domain: "host.example", Path: "a/b/c"}},
		{"a__b/c--d/e.f", Reference{Path: "a__b/c--d/e.f"}},
		{"x:" + strings.Repeat("t", 128), Reference{Path: "x", Tag: strings.Repeat("t", 128)}},
		{"x@" + fuzzDigest, Reference{Path: "x", Digest: fuzzDigest}},
	}
	for _, tt := range tests {
		got, err := ParseReference(tt.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseReference(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
	for _, in := range []string{
		"x:" + strings.Repeat("t", 129),                  // tag too long
		strings.Repeat("a", 256),                         // path too long
		"x@sha256:" + strings.Repeat("A", 64),            // upper-case hex
		"x@md5:0123456789abcdef0123456789abcdef",         // unknown algorithm
		"x@sha256:../../../etc/passwd",                   // a digest as a path
		"bad_host:5000/x", "a/../b", "a/./b", "/x", "x/", // bad components
		"x:t@", "@" + fuzzDigest, "ho st/x", "x\x00y", "x\n", // stray characters
	} {
		if r, err := ParseReference(in); err == nil {
			t.Errorf("ParseReference(%q) = %#v, want an error", in, r)
		}
	}
}

func TestParseManifestRefuses(t *testing.T) {
	good := `{"schemaVersion":2,"config":{"digest":"` + fuzzDigest + `","size":2},"layers":[{"digest":"` + fuzzDigest + `","size":1}]}`
	if _, err := ParseManifest([]byte(good)); err != nil {
		t.Fatalf("ParseManifest(%s): %v", good, err)
	}
	for name, raw := range map[string]string{
		"over the size limit":    `{"annotations":{"a":"` + strings.Repeat("x", MaxDocumentSize) + `"}}`,
		"not JSON":               `<html>`,
		"an index":               `{"mediaType":"` + MediaTypeOCIIndex + `","manifests":[]}`,
		"a Docker manifest list": `{"mediaType":"` + MediaTypeDockerManifestList + `"}`,
		"schema 1":               `{"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}`,
		"an HTML media type":     `{"mediaType":"text/html"}`,
		"no config digest":       `{"config":{}}`,
		"a config digest path":   `{"config":{"digest":"sha256:../../etc/passwd"}}`,
		"a bad layer digest":     `{"config":{"digest":"` + fuzzDigest + `"},"layers":[{"digest":"sha256:` + strings.Repeat("A", 64) + `"}]}`,
		"an md5 layer digest":    `{"config":{"digest":"` + fuzzDigest + `"},"layers":[{"digest":"md5:0123456789abcdef0123456789abcdef"}]}`,
	} {
		if m, err := ParseManifest([]byte(raw)); err == nil {
			t.Errorf("%s: ParseManifest accepted it: %+v", name, m)
		}
	}
}

func TestParseConfigRefuses(t *testing.T) {
	for name, raw := range map[string]string{
		"over the size limit": `{"author":"` + strings.Repeat("x", MaxDocumentSize) + `"}`,
		"not JSON":            `{`,
		"a bad diff ID":       `{"rootfs":{"diff_ids":["sha256:bad"]}}`,
		"a diff ID as a path": `{"rootfs":{"diff_ids":["sha256:../../x"]}}`,
		"a diff ID of md5":    `{"rootfs":{"diff_ids":["md5:0123456789abcdef0123456789abcdef"]}}`,
		"diff IDs not a list": `{"rootfs":{"diff_ids":"` + fuzzDigest + `"}}`,
		"created not a time":  `{"created":"yesterday"}`,
	} {
		if c, err := ParseConfig([]byte(raw)); err == nil {
			t.Errorf("%s: ParseConfig accepted it: %+v", name, c)
		}
	}
	c, err := ParseConfig([]byte(`{"rootfs":{"diff_ids":["` + fuzzDigest + `"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(RootFS{Type: "layers", DiffIDs: []digest.Digest{fuzzDigest}}, c.RootFS); diff != "" {
		t.Errorf("rootfs (-want +got):\n%s", diff)
	}
}
