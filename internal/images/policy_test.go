package images

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

func TestParsePullPolicy(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    PullPolicy
		wantErr string
	}{
		{in: "", want: PullMissing},
		{in: "missing", want: PullMissing},
		{in: "IfMissing", want: PullMissing},
		{in: "notpresent", want: PullMissing},
		{in: "always", want: PullAlways},
		{in: "true", want: PullAlways},
		{in: "never", want: PullNever},
		{in: "false", want: PullMissing},
		{in: "newer", want: PullNewer},
		{in: "ifnewer", want: PullNewer},
		{in: "sometimes", wantErr: `unsupported pull policy "sometimes": use missing, always, never or newer`},
	} {
		got, err := ParsePullPolicy(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParsePullPolicy(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePullPolicy(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for p, want := range map[PullPolicy]string{PullMissing: "missing", PullAlways: "always", PullNever: "never", PullNewer: "newer"} {
		if got := p.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(p), got, want)
		}
	}
}

func TestIsImageID(t *testing.T) {
	for in, want := range map[string]bool{
		"abc": true, "sha256:0123456789abcdef": true, "ab": false, "sha256:ab": false,
		"ABC": false, "busybox": false, "deadbeef:latest": false,
	} {
		if got := IsImageID(in); got != want {
			t.Errorf("IsImageID(%q) = %v, want %v", in, got, want)
		}
	}
	for in, want := range map[string]bool{
		"oci:/tmp/layout:tag": true, "docker-archive:/tmp/a.tar": true, "dir:/tmp/d": true,
		"docker://busybox": false, "busybox": false, "localhost/busybox:latest": false,
	} {
		if got := IsTransportRef(in); got != want {
			t.Errorf("IsTransportRef(%q) = %v, want %v", in, got, want)
		}
	}
}

// registryBase pushes the umoci busybox base to a fresh registry with
// skopeo and returns the registry and the base.
func registryBase(t *testing.T) (*transporttest.Registry, testbase.Base) {
	t.Helper()
	reg := transporttest.StartRegistry(t, false)
	return reg, testbase.Push(t, reg.Host, testbase.Spec{Kind: testbase.Busybox, Format: testbase.OCI})
}

// TestEnsure walks the pull policies over an image that is in the store
// or not, whose source has changed or not, or cannot be reached.
func TestEnsure(t *testing.T) {
	ctx := context.Background()
	reg, base := registryBase(t)
	rich := testbase.Push(t, reg.Host, testbase.Spec{Kind: testbase.Rich, Format: testbase.OCI})
	sys := testSystem(t)

	type state int
	const (
		absent state = iota
		present
		stale // in the store; the registry's tag now names another image
	)
	for _, tc := range []struct {
		name    string
		policy  PullPolicy
		state   state
		ref     string // default: the base's name
		pulls   bool
		wantErr error
		notes   bool // logs at debug level that it used the local image
	}{
		{name: "missing pulls an absent image", policy: PullMissing, state: absent, pulls: true},
		{name: "missing keeps a present image", policy: PullMissing, state: present},
		{name: "always pulls a present image", policy: PullAlways, state: present, pulls: true},
		{name: "never refuses an absent image", policy: PullNever, state: absent, wantErr: store.ErrImageUnknown},
		{name: "never keeps a present image", policy: PullNever, state: present},
		{name: "newer keeps an image the source still has", policy: PullNewer, state: present},
		{name: "newer pulls when the source changed", policy: PullNewer, state: stale, pulls: true},
		{name: "newer keeps the image when the source is gone", policy: PullNewer, state: present, ref: "gone", notes: true},
		{name: "an image ID is never pulled", policy: PullAlways, state: present, ref: "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(t)
			ref := "docker://" + base.Name
			name := base.Name
			if tc.state == stale {
				name = reg.Host + "/stale/busybox:latest"
				skopeoCopy(t, base.Ref, "docker://"+name)
				ref = "docker://" + name
			}
			var local store.Image
			if tc.state != absent {
				var err error
				local, err = Pull(ctx, st, ref, PullOptions{System: sys})
				must(t, err)
			}
			if tc.state == stale {
				skopeoCopy(t, rich.Ref, "docker://"+name)
			}
			switch tc.ref {
			case "":
			case "id":
				ref = local.ID[:12]
			case "gone":
				// The stored image is known by a name whose registry does
				// not answer: nothing listens on the port.
				name = fmt.Sprintf("127.0.0.1:%d/gone/busybox:latest", transporttest.FreePort(t))
				must(t, st.AddNames(ctx, local.ID, []string{name}))
				ref = name
			}
			var rec recorder
			var logs bytes.Buffer
			img, err := Ensure(ctx, st, strings.TrimPrefix(ref, "docker://"), EnsureOptions{
				Policy: tc.policy, Pull: PullOptions{System: sys, Progress: &rec},
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			if tc.wantErr != nil {
				wantErr(t, "Ensure", err, tc.wantErr)
				return
			}
			must(t, err)
			n, ok := rec.copies()
			if got := n > 0; got != tc.pulls || !ok {
				t.Errorf("pulled = %v (copies %d, all ok %v), want %v", got, n, ok, tc.pulls)
			}
			want := local.ID
			switch {
			case tc.state == stale:
				want = rich.Config.Digest.Encoded()
			case tc.state == absent:
				want = base.Config.Digest.Encoded()
			}
			if img.ID != want {
				t.Errorf("Ensure returned image %s, want %s", img.ID, want)
			}
			if got := strings.Contains(logs.String(), `level=DEBUG msg="cannot tell whether the image is up to date`); got != tc.notes {
				t.Errorf("noted = %v, want %v; logs:\n%s", got, tc.notes, logs.String())
			}
			// Nothing above debug: Buildah prints only the result.
			if strings.Contains(logs.String(), "level=WARN") || strings.Contains(logs.String(), "level=INFO") {
				t.Errorf("Ensure logged above debug level:\n%s", logs.String())
			}
		})
	}
}

// TestEnsureNames: a bad reference is refused before the store is asked;
// an unknown registry image is named in the error.
func TestEnsureNames(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	reg := transporttest.StartRegistry(t, false)
	_, err := Ensure(ctx, st, "Bad:Name!", EnsureOptions{Pull: PullOptions{System: testSystem(t)}})
	if err == nil {
		t.Error("Ensure of a bad reference succeeded")
	}
	ref := reg.Host + "/nothing/here:latest"
	_, err = Ensure(ctx, st, ref, EnsureOptions{Pull: PullOptions{System: testSystem(t)}})
	if err == nil || !strings.Contains(err.Error(), `image "`+ref+`" is not in local storage, and pulling it failed`) {
		t.Errorf("Ensure of an image nowhere: %v", err)
	}
}

// TestFrom makes working containers from scratch, a registry image named
// with docker://, and an OCI layout (unnamed without a NAME, named NAME with one).
func TestFrom(t *testing.T) {
	ctx := context.Background()
	_, base := registryBase(t)
	layout := testbase.OCILayout(t, testbase.Spec{Kind: testbase.Busybox, Format: testbase.OCI})
	sys := testSystem(t)
	for _, tc := range []struct {
		ref, wantFrom, wantID string
	}{
		{ref: "scratch"},
		{ref: "docker://" + base.Name, wantFrom: base.Name, wantID: base.Config.Digest.Encoded()},
		// A layout without NAME makes an image with no name, and the
		// container's FromImage is the reference's prefix, as Buildah's
		// getImageName has it; with NAME, the image is named NAME.
		{ref: strings.TrimSuffix(layout.Ref, ":latest"), wantFrom: "oci", wantID: layout.Config.Digest.Encoded()},
		{ref: layout.Ref, wantFrom: "docker.io/library/latest:latest", wantID: layout.Config.Digest.Encoded()},
	} {
		st := newStore(t)
		c, err := From(ctx, st, tc.ref, FromOptions{Ensure: EnsureOptions{Pull: PullOptions{System: sys}}})
		if err != nil {
			t.Errorf("From(%q): %v", tc.ref, err)
			continue
		}
		got := []string{c.State.FromImage, c.State.FromImageID}
		if diff := cmp.Diff([]string{tc.wantFrom, tc.wantID}, got); diff != "" {
			t.Errorf("From(%q): container's image (-want +got):\n%s", tc.ref, diff)
		}
		if tc.ref != "scratch" {
			root, err := c.Mount(ctx)
			must(t, err)
			testbase.Verify(t, root, testbase.Busybox)
		}
	}
	st := newStore(t)
	_, err := From(ctx, st, "localhost/none:latest", FromOptions{Ensure: EnsureOptions{Policy: PullNever}})
	wantErr(t, "From of an absent image with PullNever", err, store.ErrImageUnknown)
	cs, err := container.All(ctx, st)
	must(t, err)
	if len(cs) != 0 {
		t.Errorf("%d containers after a failed From, want none", len(cs))
	}
}

// skopeoCopy copies an image between registries on loopback (plain HTTP).
func skopeoCopy(t *testing.T, from, to string) {
	t.Helper()
	out, err := exec.Command("skopeo", "--insecure-policy", "copy", "-q", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", from, to).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy %s %s: %v\n%s", from, to, err, out)
	}
}
