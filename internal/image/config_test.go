package image

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
)

// TestConfigRootFSMarshal checks that every way a config is written
// (both formats, after a parse of any other tool's config, after Clone)
// lists diff_ids as an array: [] for an image without layers, never null.
func TestConfigRootFSMarshal(t *testing.T) {
	const d1 = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const d2 = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	parsed := func(raw string) *Config {
		c, err := ParseConfig([]byte(raw))
		if err != nil {
			t.Fatalf("ParseConfig(%s): %v", raw, err)
		}
		return c
	}
	tests := []struct {
		name string
		cfg  *Config
		want string
	}{
		{"zero value", &Config{}, `{"type":"","diff_ids":[]}`},
		{"no layers", &Config{RootFS: RootFS{Type: "layers"}}, `{"type":"layers","diff_ids":[]}`},
		{"empty slice", &Config{RootFS: RootFS{Type: "layers", DiffIDs: []digest.Digest{}}}, `{"type":"layers","diff_ids":[]}`},
		{"layers", &Config{RootFS: RootFS{Type: "layers", DiffIDs: []digest.Digest{d1, d2}}}, `{"type":"layers","diff_ids":["` + d1 + `","` + d2 + `"]}`},
		{"parsed null (BuildKit)", parsed(`{"os":"linux","rootfs":{"type":"layers","diff_ids":null}}`), `{"type":"layers","diff_ids":[]}`},
		{"parsed without diff_ids (Buildah, Docker)", parsed(`{"os":"linux","rootfs":{"type":"layers"}}`), `{"type":"layers","diff_ids":[]}`},
		{"parsed without rootfs", parsed(`{"os":"linux"}`), `{"type":"layers","diff_ids":[]}`},
		{"cloned", (&Config{RootFS: RootFS{Type: "layers"}}).Clone(), `{"type":"layers","diff_ids":[]}`},
		{"parsed layers", parsed(`{"os":"linux","rootfs":{"type":"layers","diff_ids":["` + d1 + `"]}}`), `{"type":"layers","diff_ids":["` + d1 + `"]}`},
	}
	for _, tt := range tests {
		for _, f := range []Format{FormatDocker, FormatOCI} {
			raw, err := tt.cfg.Marshal(f)
			if err != nil {
				t.Fatalf("%s: Marshal(%v): %v", tt.name, f, err)
			}
			var doc struct {
				RootFS json.RawMessage `json:"rootfs"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			var got bytes.Buffer
			if err := json.Compact(&got, doc.RootFS); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, got.String()); diff != "" {
				t.Errorf("%s, %v: rootfs (-want +got):\n%s", tt.name, f, diff)
			}
		}
	}
}

// TestConfigRootFSRoundTrip checks that writing a config and reading it
// back keeps its diff IDs, and that a config without layers reads back as
// one without layers.
func TestConfigRootFSRoundTrip(t *testing.T) {
	const d1 = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name string
		ids  []digest.Digest
		want int
	}{
		{"nil", nil, 0},
		{"empty", []digest.Digest{}, 0},
		{"one", []digest.Digest{d1}, 1},
	}
	for _, tt := range tests {
		for _, f := range []Format{FormatDocker, FormatOCI} {
			c := &Config{OS: "linux", Architecture: "amd64", RootFS: RootFS{Type: "layers", DiffIDs: tt.ids}}
			raw, err := c.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseConfig(raw)
			if err != nil {
				t.Fatalf("%s, %v: ParseConfig(%s): %v", tt.name, f, raw, err)
			}
			if got := len(back.RootFS.DiffIDs); got != tt.want {
				t.Errorf("%s, %v: %d diff IDs after a round trip, want %d", tt.name, f, got, tt.want)
			}
		}
	}
}
