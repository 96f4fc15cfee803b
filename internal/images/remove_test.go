package images

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// TestRemove walks rmi's policy: untag a name of an image that keeps
// others, delete an image by its last name or by ID, refuse an image
// with several names by ID or one containers use unless forced, and see
// earlier references' removals in later ones.
func TestRemove(t *testing.T) {
	ctx := context.Background()
	ts := time.Unix(1700000000, 0)
	type fixture struct {
		two, one, used store.Image
	}
	setup := func(t *testing.T) (*store.Store, fixture) {
		st := newStore(t)
		f := fixture{
			two:  commitImage(t, st, "two", nil, ts, "localhost/a:latest", "localhost/b:latest"),
			one:  commitImage(t, st, "one", nil, ts.Add(time.Second), "localhost/one:latest"),
			used: commitImage(t, st, "used", nil, ts.Add(2*time.Second), "localhost/used:latest"),
		}
		_, err := container.New(ctx, st, container.NewOptions{Image: f.used.ID, Name: "user"})
		must(t, err)
		return st, f
	}
	for _, tc := range []struct {
		name  string
		refs  func(fixture) []string
		opts  RemoveOptions
		want  func(fixture) []Removal
		errs  func(fixture) []string
		left  func(fixture) map[string][]string // image ID -> names
		users int
	}{
		{
			name: "untag one of several names",
			refs: func(f fixture) []string { return []string{"a"} },
			want: func(f fixture) []Removal { return []Removal{{Ref: "a", Untagged: []string{"localhost/a:latest"}}} },
			left: func(f fixture) map[string][]string {
				return map[string][]string{f.two.ID: {"localhost/b:latest"}, f.one.ID: {"localhost/one:latest"}, f.used.ID: {"localhost/used:latest"}}
			},
			users: 1,
		},
		{
			name: "both names untag then delete",
			refs: func(f fixture) []string { return []string{"localhost/a:latest", "b", "one"} },
			want: func(f fixture) []Removal {
				return []Removal{
					{Ref: "localhost/a:latest", Untagged: []string{"localhost/a:latest"}},
					{Ref: "b", Untagged: []string{"localhost/b:latest"}, Deleted: f.two.ID},
					{Ref: "one", Untagged: []string{"localhost/one:latest"}, Deleted: f.one.ID},
				}
			},
			left:  func(f fixture) map[string][]string { return map[string][]string{f.used.ID: {"localhost/used:latest"}} },
			users: 1,
		},
		{
			name: "refused without force the rest goes",
			refs: func(f fixture) []string { return []string{f.two.ID[:12], "used", "one", "one", "nothing"} },
			want: func(f fixture) []Removal {
				return []Removal{{Ref: "one", Untagged: []string{"localhost/one:latest"}, Deleted: f.one.ID}}
			},
			errs: func(f fixture) []string {
				return []string{
					"image " + f.two.ID[:12] + " has several names [localhost/a:latest localhost/b:latest]: remove them by name, or use --force",
					"image used is in use by containers [user]: remove them first, or use --force",
					"one: image not known",
					"nothing: image not known",
				}
			},
			left: func(f fixture) map[string][]string {
				return map[string][]string{f.two.ID: {"localhost/a:latest", "localhost/b:latest"}, f.used.ID: {"localhost/used:latest"}}
			},
			users: 1,
		},
		{
			name: "force by ID with its names and containers",
			refs: func(f fixture) []string { return []string{f.two.ID, "used"} },
			opts: RemoveOptions{Force: true},
			want: func(f fixture) []Removal {
				return []Removal{
					{Ref: f.two.ID, Untagged: []string{"localhost/a:latest", "localhost/b:latest"}, Deleted: f.two.ID},
					{Ref: "used", Untagged: []string{"localhost/used:latest"}, Deleted: f.used.ID},
				}
			},
			left: func(f fixture) map[string][]string { return map[string][]string{f.one.ID: {"localhost/one:latest"}} },
		},
		{
			name: "all forced",
			opts: RemoveOptions{All: true, Force: true},
			refs: func(fixture) []string { return nil },
			want: func(f fixture) []Removal {
				return []Removal{
					{Ref: f.used.ID, Untagged: []string{"localhost/used:latest"}, Deleted: f.used.ID},
					{Ref: f.one.ID, Untagged: []string{"localhost/one:latest"}, Deleted: f.one.ID},
					{Ref: f.two.ID, Untagged: []string{"localhost/a:latest", "localhost/b:latest"}, Deleted: f.two.ID},
				}
			},
			left: func(fixture) map[string][]string { return map[string][]string{} },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, f := setup(t)
			got, err := Remove(ctx, st, tc.refs(f), tc.opts)
			if diff := cmp.Diff(tc.want(f), got); diff != "" {
				t.Errorf("removals (-want +got):\n%s", diff)
			}
			var wantErr string
			if tc.errs != nil {
				wantErr = strings.Join(tc.errs(f), "\n")
			}
			if errString(err) != wantErr {
				t.Errorf("error:\n%v\nwant:\n%s", err, wantErr)
			}
			imgs, err := st.Images(ctx)
			must(t, err)
			left := map[string][]string{}
			for _, img := range imgs {
				left[img.ID] = img.Names
			}
			if diff := cmp.Diff(tc.left(f), left); diff != "" {
				t.Errorf("images left (-want +got):\n%s", diff)
			}
			users, err := st.ContainersUsing(ctx, f.used.ID)
			must(t, err)
			if len(users) != tc.users {
				t.Errorf("%d containers use the image, want %d", len(users), tc.users)
			}
		})
	}
}

// TestPruneDangling: rmi --prune removes the unnamed images a commit
// left behind (its name went to a newer commit that builds on it), and
// the image a removed one was made from when it is unnamed too; a named
// image, a build's intermediate step with a child and an image a
// container uses stay.
func TestPruneDangling(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	ts := time.Unix(1700000000, 0)
	named := commitImage(t, st, "named", nil, ts, "localhost/named:latest")
	step := commitImage(t, st, "step", nil, ts)
	must(t, st.CachePut(ctx, "step-key", step.ID))
	built := commitOn(t, st, step.ID, "built", ts.Add(time.Second), "localhost/built:latest")
	used := commitImage(t, st, "used", nil, ts)
	user, err := container.New(ctx, st, container.NewOptions{Image: used.ID})
	must(t, err)
	defer user.Remove(ctx)
	old := commitImage(t, st, "old", nil, ts)
	newer := commitOn(t, st, old.ID, "newer", ts.Add(time.Second))

	removed, err := PruneDangling(ctx, st)
	must(t, err)
	var got []string
	for _, r := range removed {
		got = append(got, r.Deleted)
	}
	if diff := cmp.Diff(sorted([]string{old.ID, newer.ID}), sorted(got)); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	left, err := st.Images(ctx)
	must(t, err)
	if diff := cmp.Diff(sorted([]string{named.ID, step.ID, built.ID, used.ID}), sorted(ids(left))); diff != "" {
		t.Errorf("left (-want +got):\n%s", diff)
	}
}

// commitOn commits an image of one more file on the image base.
func commitOn(t *testing.T, st *store.Store, base, file string, created time.Time, names ...string) store.Image {
	t.Helper()
	ctx := context.Background()
	c, err := container.New(ctx, st, container.NewOptions{Image: base})
	must(t, err)
	defer c.Remove(ctx)
	root, err := c.Mount(ctx)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(root, file), []byte(file), 0o644))
	img, err := c.Commit(ctx, container.CommitOptions{Names: names, Format: image.FormatOCI, Timestamp: &created})
	must(t, err)
	return img
}
