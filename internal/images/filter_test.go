package images

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// TestFilter: the keys of `images` and `prune` on one set of images, and
// the errors each verb gives for what it does not take.
func TestFilter(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	old := commitImage(t, st, "old", map[string]string{"tier": "base"}, t0, "localhost/app/old:1")
	mid := commitImage(t, st, "mid", map[string]string{"tier": "app", "keep": ""}, t0.Add(24*time.Hour), "localhost/app/mid:1", "localhost/other:2")
	dangling := commitImage(t, st, "dangling", nil, t0.Add(48*time.Hour))
	now := t0.Add(72 * time.Hour)
	all := []string{dangling.ID, mid.ID, old.ID}

	for _, tc := range []struct {
		keys    []FilterKey
		verb    string
		specs   []string
		want    []string
		wantErr string
	}{
		{keys: ListKeys, want: all},
		{keys: ListKeys, specs: []string{"dangling=true"}, want: []string{dangling.ID}},
		{keys: ListKeys, specs: []string{"dangling=false"}, want: []string{mid.ID, old.ID}},
		{keys: ListKeys, specs: []string{"id=sha256:" + mid.ID[:8]}, want: []string{mid.ID}},
		{keys: ListKeys, specs: []string{"reference=app/*"}, want: []string{mid.ID, old.ID}},
		{keys: ListKeys, specs: []string{"reference=app/"}, want: []string{}},
		{keys: ListKeys, specs: []string{"reference=ol*"}, want: []string{old.ID}},
		{keys: ListKeys, specs: []string{"reference=*/other:2"}, want: []string{mid.ID}},
		{keys: ListKeys, specs: []string{"reference=localhost/app/old:1"}, want: []string{old.ID}},
		{keys: ListKeys, specs: []string{"reference=app/mid:1"}, want: []string{mid.ID}},
		{keys: ListKeys, specs: []string{"reference=" + dangling.ID[:12]}, want: []string{dangling.ID}},
		// Repeats of reference, id and label are alternatives (Buildah's
		// images filter test: pause* or u* keeps pause); keys apart must
		// all pass.
		{keys: ListKeys, specs: []string{"reference=ol*", "reference=u*"}, want: []string{old.ID}},
		{keys: ListKeys, specs: []string{"reference=ol*", "reference=other"}, want: []string{mid.ID, old.ID}},
		{keys: ListKeys, specs: []string{"label=tier=app", "label=tier=base"}, want: []string{mid.ID, old.ID}},
		{keys: ListKeys, specs: []string{"reference=app/*", "label=tier=app"}, want: []string{mid.ID}},
		{keys: ListKeys, specs: []string{"id=" + mid.ID[:8], "id=" + old.ID[:8]}, want: []string{mid.ID, old.ID}},
		{keys: ListKeys, specs: []string{"before=localhost/other:2"}, want: []string{old.ID}},
		{keys: ListKeys, specs: []string{"since=" + old.ID[:12]}, want: []string{dangling.ID, mid.ID}},
		{keys: ListKeys, specs: []string{"label=tier"}, want: []string{mid.ID, old.ID}},
		{keys: ListKeys, specs: []string{"label=tier=app"}, want: []string{mid.ID}},
		{keys: ListKeys, specs: []string{"label=keep="}, want: []string{mid.ID}},
		{keys: PruneKeys, verb: "prune", specs: []string{"label!=tier=app"}, want: []string{dangling.ID, old.ID}},
		{keys: PruneKeys, verb: "prune", specs: []string{"until=36h"}, want: []string{mid.ID, old.ID}},
		{keys: PruneKeys, verb: "prune", specs: []string{"until=2024-01-01T12:00:00Z"}, want: []string{old.ID}},
		{keys: PruneKeys, verb: "prune", specs: []string{"until=2024-01-02"}, want: []string{old.ID}},
		{keys: PruneKeys, verb: "prune", specs: []string{"until=1704110400"}, want: []string{old.ID}},
		{keys: ListKeys, specs: []string{"dangling"}, wantErr: `invalid image filter "dangling": must be in the format "filter=value or filter!=value"`},
		{keys: ListKeys, specs: []string{"until=1h"}, wantErr: `unknown --filter key "until": use dangling, id, reference, before, since or label`},
		{keys: ListKeys, specs: []string{"before=localhost/none"}, wantErr: `--filter before=localhost/none: image not known: localhost/none`},
		{keys: PruneKeys, verb: "prune", specs: []string{"dangling=true"}, wantErr: `unknown --filter key "dangling" for prune: use until, label or label!`},
		{keys: PruneKeys, verb: "prune", specs: []string{"until=soon"}, wantErr: `bad --filter until=soon: want a duration (24h), a Unix time or an RFC 3339 time`},
	} {
		f, err := ParseFilter(ctx, st, tc.specs, FilterOptions{Keys: tc.keys, Verb: tc.verb, Now: now})
		if errString(err) != tc.wantErr {
			t.Errorf("ParseFilter(%q) error = %v, want %q", tc.specs, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		got, err := List(ctx, st, ListOptions{All: true, Filter: f})
		must(t, err)
		if diff := cmp.Diff(sorted(tc.want), sorted(ids(got))); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.specs, diff)
		}
		if (f.Func() == nil) != (len(tc.specs) == 0) {
			t.Errorf("%q: Func() nil is %v", tc.specs, f.Func() == nil)
		}
	}
	f, err := ParseFilter(ctx, st, []string{"reference=app/*"}, FilterOptions{Keys: ListKeys})
	must(t, err)
	got, err := List(ctx, st, ListOptions{Filter: f.Only(old)})
	must(t, err)
	if diff := cmp.Diff([]string{old.ID}, ids(got)); diff != "" {
		t.Errorf("Only (-want +got):\n%s", diff)
	}
}

// TestListIntermediates: unnamed images another image builds on that are
// steps of a cached build are listed only with All; an unnamed image a
// later commit of the same container builds on is dangling, and listed.
func TestListIntermediates(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	ts := time.Unix(1700000000, 0)
	step := commitImage(t, st, "step", nil, ts)
	must(t, st.CachePut(ctx, "step-key", step.ID))
	c, err := container.New(ctx, st, container.NewOptions{Image: step.ID})
	must(t, err)
	later := ts.Add(time.Minute)
	top, err := c.Commit(ctx, container.CommitOptions{Names: []string{"localhost/top:latest"}, Format: image.FormatOCI, Timestamp: &later})
	must(t, err)
	must(t, c.Remove(ctx))
	lone := commitImage(t, st, "lone", nil, ts)
	c, err = container.New(ctx, st, container.NewOptions{Image: lone.ID})
	must(t, err)
	first, err := c.Commit(ctx, container.CommitOptions{Names: []string{"localhost/again:latest"}, Format: image.FormatOCI, Timestamp: &later})
	must(t, err)
	root, err := c.Mount(ctx)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(root, "more"), nil, 0o644))
	again := later.Add(time.Minute)
	second, err := c.Commit(ctx, container.CommitOptions{Names: []string{"localhost/again:latest"}, Format: image.FormatOCI, Timestamp: &again})
	must(t, err)
	must(t, c.Remove(ctx))
	for all, want := range map[bool][]string{false: {top.ID, lone.ID, first.ID, second.ID}, true: {top.ID, step.ID, lone.ID, first.ID, second.ID}} {
		got, err := List(ctx, st, ListOptions{All: all})
		must(t, err)
		if diff := cmp.Diff(sorted(want), sorted(ids(got))); diff != "" {
			t.Errorf("List(All: %v) (-want +got):\n%s", all, diff)
		}
	}
}

func ids(imgs []store.Image) []string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.ID)
	}
	return out
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}
