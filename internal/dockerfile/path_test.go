package dockerfile

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// TestDefaultPath: a stage whose base config has no PATH (scratch, or an
// image `kiln from scratch` and commit made) gets Docker's default PATH
// after the base's own entries, as BuildKit does; RUN sees it, and a
// stage with no instruction still gets it, without a layer. A base with
// a PATH keeps its own.
func TestDefaultPath(t *testing.T) {
	st := testStore(t)
	ctx := context.Background()
	c, err := container.New(ctx, st, container.NewOptions{Image: "localhost/busybox:latest", Name: "nopath"})
	must(t, err)
	c.State.Config.Config.Env = []string{"A=1"}
	_, err = c.Commit(ctx, container.CommitOptions{Names: []string{"localhost/nopath:latest"}, Format: image.FormatDocker, EmptyLayer: true})
	must(t, err)
	must(t, c.Remove(ctx))
	baseLayers := len(configOf(t, st, mustImage(t, st, "localhost/nopath:latest")).RootFS.DiffIDs)

	tests := []struct {
		name       string
		dockerfile string
		env        []string
		layers     int
		files      map[string]string
	}{
		{"scratch", "FROM scratch\n", []string{image.DefaultPath}, 0, nil},
		{"scratch then ENV", "FROM scratch\nENV B=2\n", []string{image.DefaultPath, "B=2"}, 0, nil},
		{"base without PATH", "FROM localhost/nopath\n", []string{"A=1", image.DefaultPath}, baseLayers, nil},
		{"base without PATH, RUN", "FROM localhost/nopath\nRUN echo \"$PATH\" > /path.txt\n",
			[]string{"A=1", image.DefaultPath}, baseLayers + 1,
			map[string]string{"/path.txt": image.DefaultPath[len("PATH="):] + "\n"}},
		{"stage on a stage", "FROM localhost/nopath AS a\nFROM a\nLABEL x=y\n", []string{"A=1", image.DefaultPath}, baseLayers, nil},
		{"base with PATH", "FROM busybox\nENV B=2\n", []string{image.DefaultPath, "B=2"}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, out, err := buildIn(t, st, t.TempDir(), tt.dockerfile, nil)
			if err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			cfg := configOf(t, st, img)
			if diff := cmp.Diff(tt.env, cfg.Config.Env); diff != "" {
				t.Errorf("Env (-want +got):\n%s", diff)
			}
			if got := len(cfg.RootFS.DiffIDs); got != tt.layers {
				t.Errorf("%d layers, want %d", got, tt.layers)
			}
			if len(tt.files) == 0 {
				return
			}
			root := rootOf(t, st, img)
			for p, want := range tt.files {
				got, err := os.ReadFile(filepath.Join(root, p))
				if err != nil || string(got) != want {
					t.Errorf("%s = %q (%v), want %q", p, got, err, want)
				}
			}
		})
	}
}

func mustImage(t *testing.T, st *store.Store, name string) store.Image {
	t.Helper()
	img, err := st.LookupImage(context.Background(), name)
	must(t, err)
	return img
}
