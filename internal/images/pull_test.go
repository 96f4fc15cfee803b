package images

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/testbase"
	"github.com/kiln-build/kiln/internal/transport"
	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

// TestPull pulls bases other tools made, from a registry and from
// layouts and archives, and checks the names Buildah would give them,
// that the manifest and layers are kept as they came, and the rootfs.
func TestPull(t *testing.T) {
	ctx := context.Background()
	reg := transporttest.StartRegistry(t, false)
	sys := testSystem(t)
	for _, tc := range []struct {
		base  testbase.Base
		names func(testbase.Base) []string
	}{
		{base: testbase.Push(t, reg.Host, testbase.Spec{Kind: testbase.Busybox, Format: testbase.DockerV2S2}),
			names: func(b testbase.Base) []string { return []string{b.Name} }},
		{base: testbase.Push(t, reg.Host, testbase.Spec{Kind: testbase.Rich, Format: testbase.OCI, Compression: testbase.Zstd}),
			names: func(b testbase.Base) []string { return []string{b.Name} }},
		// oci:DIR:NAME is named NAME, normalized, as Buildah 1.28 names it
		// (pull.bats: pull-from-oci-directory); the layout's NAME is "latest".
		{base: testbase.OCILayout(t, testbase.Spec{Kind: testbase.Busybox, Format: testbase.OCI}),
			names: func(testbase.Base) []string { return []string{"docker.io/library/latest:latest"} }},
		{base: testbase.DockerArchive(t, testbase.Spec{Kind: testbase.Docker}),
			names: func(b testbase.Base) []string { return []string{"docker.io/" + b.Name} }},
	} {
		t.Run(tc.base.Spec.String()+"@"+strings.SplitN(tc.base.Ref, ":", 2)[0], func(t *testing.T) {
			st := newStore(t)
			var rec recorder
			img, err := Pull(ctx, st, tc.base.Ref, PullOptions{System: sys, Progress: &rec})
			must(t, err)
			if n, ok := rec.copies(); n != 1 || !ok || rec.events == 0 {
				t.Errorf("progress: %d copies (all ok %v), %d events; want 1 copy and events", n, ok, rec.events)
			}
			if diff := cmp.Diff(tc.names(tc.base), img.Names); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if img.ID != tc.base.Config.Digest.Encoded() {
				t.Errorf("image ID %s, want the config digest %s", img.ID, tc.base.Config.Digest)
			}
			m, cfg := stored(t, st, img)
			if !strings.HasPrefix(tc.base.Ref, "docker-archive:") {
				if diff := cmp.Diff(tc.base.LayerDigests(), layerDigests(m.Layers)); diff != "" {
					t.Errorf("layers not kept as they came (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tc.base.DiffIDs, cfg.RootFS.DiffIDs); diff != "" {
				t.Errorf("diff IDs (-want +got):\n%s", diff)
			}
			dir := t.TempDir()
			must(t, ExportDir(ctx, st, img.ID, dir))
			testbase.Verify(t, dir, tc.base.Spec.Kind)
		})
	}
}

// stored returns the manifest and config the store keeps for img.
func stored(t *testing.T, st *store.Store, img store.Image) (ocispec.Manifest, *image.Config) {
	t.Helper()
	raw, err := st.ImageManifest(img)
	must(t, err)
	var m ocispec.Manifest
	must(t, json.Unmarshal(raw, &m))
	raw, err = st.ImageConfig(img)
	must(t, err)
	cfg, err := image.ParseConfig(raw)
	must(t, err)
	return m, cfg
}

func layerDigests(descs []ocispec.Descriptor) []digest.Digest {
	out := make([]digest.Digest, len(descs))
	for i, d := range descs {
		out[i] = d.Digest
	}
	return out
}

// TestPullErrors: what cannot be pulled says what was being pulled.
func TestPullErrors(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	reg := transporttest.StartRegistry(t, false)
	for _, ref := range []string{
		"docker://" + reg.Host + "/nothing/here:latest",
		"oci:" + t.TempDir() + "/none:latest",
	} {
		_, err := Pull(ctx, st, ref, PullOptions{System: testSystem(t)})
		if err == nil || !strings.HasPrefix(err.Error(), "pulling "+ref+": ") {
			t.Errorf("Pull(%s) = %v, want an error that starts with \"pulling %s: \"", ref, err, ref)
		}
	}
	_, err := Pull(ctx, st, "docker://"+reg.Host+"/nothing/here:latest", PullOptions{System: testSystem(t)})
	wantErr(t, "Pull of an image the registry lacks", err, transport.ErrNotFound)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestRepositoryTags lists the tags skopeo pushed, and refuses what
// names no repository.
func TestRepositoryTags(t *testing.T) {
	ctx := context.Background()
	reg, base := registryBase(t)
	repo := reg.Host + "/tags/busybox"
	for _, tag := range []string{"b", "a", "1.0"} {
		skopeoCopy(t, base.Ref, "docker://"+repo+":"+tag)
	}
	got, err := RepositoryTags(ctx, "docker://"+repo, testSystem(t))
	must(t, err)
	want := []string{"docker://" + repo + ":1.0", "docker://" + repo + ":a", "docker://" + repo + ":b"}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	for ref, want := range map[string]string{
		"docker://" + repo + ":a":   `--all-tags needs a repository without a tag or digest, not "docker://` + repo + `:a"`,
		"oci:/tmp/layout":           "pulling all tags is not supported for oci transport: --all-tags needs a registry repository, not oci:/tmp/layout",
		"docker-archive:/tmp/a.tar": "pulling all tags is not supported for docker-archive transport: --all-tags needs a registry repository, not docker-archive:/tmp/a.tar",
	} {
		if _, err := RepositoryTags(ctx, ref, testSystem(t)); errString(err) != want {
			t.Errorf("RepositoryTags(%s) = %v, want %q", ref, err, want)
		}
	}
}
