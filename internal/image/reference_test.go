package image

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseReference(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in   string
		want Reference
	}{
		{"busybox", Reference{Path: "busybox"}},
		{"localhost/busybox", Reference{Domain: "localhost", Path: "busybox"}},
		{"localhost:5000/a/b:v1", Reference{Domain: "localhost:5000", Path: "a/b", Tag: "v1"}},
		{"quay.io/x/y@" + dg, Reference{Domain: "quay.io", Path: "x/y", Digest: dg}},
		{"x/y:t@" + dg, Reference{Path: "x/y", Tag: "t", Digest: dg}},
		{"127.0.0.1:5000/hello", Reference{Domain: "127.0.0.1:5000", Path: "hello"}},
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
		if got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}

func TestParseReferenceErrors(t *testing.T) {
	for _, in := range []string{"", "Busybox", "a//b", "a:b:c", "x@sha256:12", "x:-bad", "-x", "a/b:"} {
		if _, err := ParseReference(in); !errors.Is(err, ErrBadReference) {
			t.Errorf("ParseReference(%q) = %v, want ErrBadReference", in, err)
		}
	}
}

func TestLocalCandidates(t *testing.T) {
	got, err := LocalCandidates("busybox")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"localhost/busybox:latest", "docker.io/busybox:latest", "docker.io/library/busybox:latest"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LocalCandidates (-want +got):\n%s", diff)
	}
	for in, want := range map[string]string{
		"docker.io/scratch-image":    "docker.io/library/scratch-image:latest", // as Buildah and Docker name it
		"index.docker.io/team/app:1": "docker.io/team/app:1",
		"quay.io/x":                  "quay.io/x:latest",
	} {
		if n, _ := NormalizeName(in); n != want {
			t.Errorf("NormalizeName(%s) = %q, want %q", in, n, want)
		}
	}
	if n, _ := NormalizeName("hello"); n != "localhost/hello:latest" {
		t.Errorf("NormalizeName(hello) = %q", n)
	}
}

func TestDockerNormalized(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct{ in, want string }{
		{"busybox", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36"},
		{"org/app", "docker.io/org/app:latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest"},
		{"index.docker.io/busybox@" + dg, "docker.io/library/busybox@" + dg},
		{"localhost/busybox", "localhost/busybox:latest"},
		{"localhost:5000/a/b:v1", "localhost:5000/a/b:v1"},
		{"quay.io/x", "quay.io/x:latest"},
	}
	for _, tt := range tests {
		r, err := ParseReference(tt.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tt.in, err)
			continue
		}
		if got := r.DockerNormalized().String(); got != tt.want {
			t.Errorf("DockerNormalized(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestValidTag: validTag accepts exactly what the distribution
// reference grammar's tag pattern accepts.
func TestValidTag(t *testing.T) {
	grammar := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	long := strings.Repeat("a", 128)
	for _, tag := range []string{"", "latest", "v1.2.3", "_x", ".x", "-x", "x-", "x.", "A_b-C.d", "a:b", "a/b", "é", "a b", long, long + "a", "0"} {
		if got, want := validTag(tag), grammar.MatchString(tag); got != want {
			t.Errorf("validTag(%q) = %t, want %t", tag, got, want)
		}
	}
}
