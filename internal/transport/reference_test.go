package transport

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestParseReference(t *testing.T) {
	tests := []struct {
		in, transport, str string
		wantErr            bool
	}{
		{"docker://quay.io/a/b:v1", "docker", "docker://quay.io/a/b:v1", false},
		{"docker://localhost:5000/a@sha256:" + sixtyFour, "docker", "docker://localhost:5000/a@sha256:" + sixtyFour, false},
		{"docker://localhost:5000/a@sha256:abc", "", "", true},
		{"docker:busybox", "docker", "docker:busybox", false}, // the image docker:busybox, as Buildah reads it
		{"docker:latest", "docker", "docker:latest", false},
		{"docker-daemon:busybox", "docker-daemon", "docker-daemon:busybox:latest", false},
		{"docker-daemon:localhost:5000/x:v2", "docker-daemon", "docker-daemon:localhost:5000/x:v2", false},
		{"docker-daemon:sha256:" + sixtyFour, "docker-daemon", "docker-daemon:sha256:" + sixtyFour, false},
		{"docker-daemon:busybox@sha256:" + sixtyFour, "", "", true},
		{"oci:/tmp/l:v1", "oci", "oci:/tmp/l:v1", false},
		{"oci:/tmp/l", "oci", "oci:/tmp/l", false},
		{"oci-archive:/tmp/a.tar:v1", "oci-archive", "oci-archive:/tmp/a.tar:v1", false},
		{"docker-archive:/tmp/a.tar:kiln/x:v1", "docker-archive", "docker-archive:/tmp/a.tar:kiln/x:v1", false},
		{"dir:/tmp/d", "dir", "dir:/tmp/d", false},
		{"dir:", "", "", true},
		{"quay.io/a/b:v1", "docker", "docker://quay.io/a/b:v1", false},
		{"localhost:5000/a", "docker", "docker://localhost:5000/a:latest", false},
		{"busybox", "docker", "busybox", false},
		{"Bad Name", "", "", true},
		{"Busybox", "", "", true},
		{"busybox:-x", "", "", true},
		{"[::1]:5000/x:v1", "docker", "docker://[::1]:5000/x:v1", false},
		{"localhost/x@sha256:" + sixtyFour, "docker", "docker://localhost/x@sha256:" + sixtyFour, false},
	}
	for _, tc := range tests {
		r, err := ParseReference(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseReference(%q) = %v, want an error", tc.in, r)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tc.in, err)
			continue
		}
		if r.Transport() != tc.transport || r.String() != tc.str {
			t.Errorf("ParseReference(%q) = %s %s, want %s %s", tc.in, r.Transport(), r, tc.transport, tc.str)
		}
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestResolveShortName(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	os.WriteFile(conf, []byte(`
unqualified-search-registries = ["quay.io", "docker.io"]
[aliases]
"myimg" = "registry.example/team/myimg"
[[registry]]
prefix = "blocked.example"
blocked = true
`), 0o644)
	os.MkdirAll(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "d", "50-mode.conf"), []byte(`short-name-mode = "permissive"`), 0o644)
	sys := &SystemContext{RegistriesConf: conf, RegistriesConfDir: filepath.Join(dir, "d")}
	tests := []struct {
		in   string
		want []string
	}{
		{"busybox", []string{"quay.io/busybox", "docker.io/library/busybox"}},
		{"busybox:1.36", []string{"quay.io/busybox:1.36", "docker.io/library/busybox:1.36"}},
		{"org/app", []string{"quay.io/org/app", "docker.io/org/app"}},
		{"myimg:v1", []string{"registry.example/team/myimg:v1"}},
		{"ghcr.io/x/y", []string{"ghcr.io/x/y"}},
		{"myimg@sha256:" + sixtyFour, []string{"registry.example/team/myimg@sha256:" + sixtyFour}},
	}
	for _, tc := range tests {
		got, err := ResolveShortName(tc.in, sys)
		if err != nil {
			t.Errorf("ResolveShortName(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ResolveShortName(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	os.WriteFile(filepath.Join(dir, "d", "60-enforce.conf"), []byte(`short-name-mode = "enforcing"`), 0o644)
	if _, err := ResolveShortName("busybox", sys); !errors.Is(err, ErrShortName) {
		t.Errorf("ambiguous name in enforcing mode: %v, want ErrShortName", err)
	}
	_, err := mustParse(t, "blocked.example/x").NewSource(t.Context(), sys)
	if !errors.Is(err, ErrBlocked) {
		t.Errorf("blocked registry: %v, want ErrBlocked", err)
	}
}

// TestRegistriesConfV1: registries.conf in its version 1 form is read as
// Buildah reads it: [registries.search] is the unqualified-search list,
// [registries.insecure] and [registries.block] mark hosts; a blocked
// host is refused in Buildah's words.
func TestRegistriesConfV1(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	os.WriteFile(conf, []byte(`
[registries.search]
registries = ['docker.io', 'registry.fedoraproject.org']
[registries.insecure]
registries = ['insecure.example:5000']
[registries.block]
registries = ['docker.io']
`), 0o644)
	sys := &SystemContext{RegistriesConf: conf, RegistriesConfDir: filepath.Join(dir, "none")}
	c, err := LoadRegistriesConf(sys)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"docker.io", "registry.fedoraproject.org"}, c.UnqualifiedSearchRegistries); diff != "" {
		t.Errorf("search registries (-want +got):\n%s", diff)
	}
	if r := c.FindRegistry("insecure.example:5000/x"); r == nil || !r.Insecure || r.Blocked {
		t.Errorf("insecure.example:5000: %+v", r)
	}
	_, err = mustParse(t, "docker.io/alpine").NewSource(t.Context(), sys)
	if !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), "registry docker.io is blocked in") {
		t.Errorf("pulling from a v1-blocked registry: %v", err)
	}
}

// TestRegistrySources: BUILD_REGISTRY_SOURCES's JSON is read, and a
// registry it blocks, or does not allow, is refused in Buildah's words
// before anything is sent to it.
func TestRegistrySources(t *testing.T) {
	if _, err := ParseRegistrySources(`{"blockedRegistries": ["a"], "bogus": 1}`); err == nil {
		t.Error("an unknown key was accepted")
	}
	for _, tc := range []struct {
		json, ref, want string
	}{
		{`{"blockedRegistries": ["docker.io"]}`, "docker.io/library/busybox", `registry "docker.io" denied by policy: it is in the blocked registries list`},
		{`{"allowedRegistries": ["some-other-registry.example.com"]}`, "registry.example.com/busierbox", `registry "registry.example.com" denied by policy: not in allowed registries list`},
		{`{"allowedRegistries": ["registry.example.com"]}`, "127.0.0.1:1/x", `registry "127.0.0.1:1" denied by policy: not in allowed registries list`},
	} {
		rs, err := ParseRegistrySources(tc.json)
		if err != nil {
			t.Fatal(err)
		}
		sys := &SystemContext{Sources: rs, RegistriesConf: filepath.Join(t.TempDir(), "none.conf"), Retry: -1}
		_, err = mustParse(t, tc.ref).NewSource(t.Context(), sys)
		if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with %s: %v, want %q", tc.ref, tc.json, err, tc.want)
		}
	}
}

// TestPushIgnoresLocation: registries.conf's location redirects pulls
// only; a push goes to the registry the name says, as containers/image
// does it.
func TestPushIgnoresLocation(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	os.WriteFile(conf, []byte(`
[[registry]]
prefix = "registry.invalid"
location = "127.0.0.1:1/elsewhere"
insecure = true
`), 0o644)
	sys := &SystemContext{RegistriesConf: conf, RegistriesConfDir: filepath.Join(dir, "none")}
	ref, err := name.ParseReference("registry.invalid/team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := pushEndpoint(ref, sys)
	if err != nil {
		t.Fatal(err)
	}
	if got := ep.Context().RegistryStr() + "/" + ep.Context().RepositoryStr(); got != "registry.invalid/team/app" {
		t.Errorf("push endpoint = %s, want registry.invalid/team/app", got)
	}
	if ep.Context().Scheme() != "http" {
		t.Errorf("push endpoint scheme %s: the registry's insecure setting was not kept", ep.Context().Scheme())
	}
	eps, err := endpoints(ref, sys, true)
	if err != nil || eps[len(eps)-1].Context().RegistryStr() != "127.0.0.1:1" {
		t.Errorf("pull endpoints = %v, %v; want the location 127.0.0.1:1", eps, err)
	}
}
