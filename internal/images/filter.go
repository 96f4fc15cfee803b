package images

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// FilterKey is a key of --filter KEY=VALUE.
type FilterKey int

const (
	// Dangling: "true" keeps images without a name that are not the
	// intermediate steps of a build; anything else the others.
	Dangling FilterKey = iota
	// ID keeps images whose ID starts with the value ("sha256:" allowed).
	ID
	// Reference keeps the image the value names, and images one of whose
	// names matches the value as a shell pattern (path.Match), whole or
	// in part as Buildah's libimage cuts it: "host/repo:tag", "host/repo",
	// "repo:tag", "repo", "name:tag" or "name" ("pause*" matches
	// registry.k8s.io/pause:3.5).
	Reference
	// Before and Since keep images created before or after the image the
	// value names.
	Before
	Since
	// Label keeps images whose config has the label KEY (or KEY=VALUE).
	Label
	// NotLabel (label!=) keeps images Label would drop.
	NotLabel
	// Until keeps images created before a time: a duration back from now
	// ("24h"), a Unix time, an RFC 3339 time or a date.
	Until
)

var filterKeyNames = [...]string{Dangling: "dangling", ID: "id", Reference: "reference", Before: "before", Since: "since", Label: "label", NotLabel: "label!", Until: "until"}

// String returns the key as written before the "=".
func (k FilterKey) String() string {
	if k >= 0 && int(k) < len(filterKeyNames) {
		return filterKeyNames[k]
	}
	return fmt.Sprintf("FilterKey(%d)", int(k))
}

// ListKeys are the keys `kiln images` accepts, PruneKeys those of
// `kiln prune` and `kiln image prune`.
var (
	ListKeys  = []FilterKey{Dangling, ID, Reference, Before, Since, Label}
	PruneKeys = []FilterKey{Until, Label, NotLabel}
)

// FilterOptions say which keys ParseFilter accepts and how it reads them.
type FilterOptions struct {
	// Keys are the keys accepted; errors name them in this order.
	Keys []FilterKey
	// Verb, when set, is named in the error for an unknown key.
	Verb string
	// Now is the time until= durations count back from.
	Now time.Time
}

// Filter selects images; the zero Filter keeps every image. It is safe
// for concurrent use.
type Filter struct {
	preds []func(store.Image) bool
}

// ParseFilter reads --filter KEY=VALUE flags. An image must pass the
// filters of every key given; repeats of id, reference and label are
// alternatives, as in Buildah (reference=a* --filter reference=b* keeps
// the images either keeps), repeats of the others must all pass. Before
// and since look their image up now; label reads each image's config
// when matched.
func ParseFilter(ctx context.Context, st *store.Store, specs []string, o FilterOptions) (Filter, error) {
	var f Filter
	alternatives := map[FilterKey]int{} // key -> index of its predicate in f.preds
	for _, spec := range specs {
		k, v, ok := strings.Cut(spec, "=")
		if !ok {
			return Filter{}, fmt.Errorf(`invalid image filter %q: must be in the format "filter=value or filter!=value"`, spec)
		}
		key, ok := o.key(k)
		if !ok {
			return Filter{}, o.unknown(k)
		}
		p, err := predicate(ctx, st, key, v, o.Now)
		if err != nil {
			return Filter{}, err
		}
		if key == ID || key == Reference || key == Label {
			if i, ok := alternatives[key]; ok {
				prev := f.preds[i]
				f.preds[i] = func(img store.Image) bool { return prev(img) || p(img) }
				continue
			}
			alternatives[key] = len(f.preds)
		}
		f.preds = append(f.preds, p)
	}
	return f, nil
}

func (o FilterOptions) key(s string) (FilterKey, bool) {
	for _, k := range o.Keys {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

func (o FilterOptions) unknown(k string) error {
	names := make([]string, len(o.Keys))
	for i, key := range o.Keys {
		names[i] = key.String()
	}
	use := strings.Join(names, ", ")
	if n := len(names); n > 1 {
		use = strings.Join(names[:n-1], ", ") + " or " + names[n-1]
	}
	verb := ""
	if o.Verb != "" {
		verb = " for " + o.Verb
	}
	return fmt.Errorf("unknown --filter key %q%s: use %s", k, verb, use)
}

// Only narrows f to the one image img.
func (f Filter) Only(img store.Image) Filter {
	id := img.ID
	f.preds = append([]func(store.Image) bool{func(i store.Image) bool { return i.ID == id }}, f.preds...)
	return f
}

// Match reports whether img passes every filter.
func (f Filter) Match(img store.Image) bool {
	for _, p := range f.preds {
		if !p(img) {
			return false
		}
	}
	return true
}

// Func returns f as a predicate, nil when it keeps every image (as
// store.PruneOptions.Images wants it).
func (f Filter) Func() func(store.Image) bool {
	if len(f.preds) == 0 {
		return nil
	}
	return f.Match
}

func predicate(ctx context.Context, st *store.Store, k FilterKey, v string, now time.Time) (func(store.Image) bool, error) {
	switch k {
	case Dangling:
		want := v == "true"
		imgs, err := st.Images(ctx)
		if err != nil {
			return nil, err
		}
		inter, err := intermediateSet(ctx, st, imgs)
		if err != nil {
			return nil, err
		}
		listed, err := listedImages(ctx, st)
		if err != nil {
			return nil, err
		}
		return func(i store.Image) bool { return (len(i.Names) == 0 && !inter[i.ID] && !listed[i.ID]) == want }, nil
	case ID:
		return func(i store.Image) bool { return strings.HasPrefix(i.ID, strings.TrimPrefix(v, "sha256:")) }, nil
	case Reference:
		var named string
		if img, err := st.LookupImage(ctx, v); err == nil {
			named = img.ID
		}
		return func(i store.Image) bool {
			if i.ID == named {
				return true
			}
			for _, n := range i.Names {
				if referenceMatches(v, n) {
					return true
				}
			}
			return false
		}, nil
	case Before, Since:
		ref, err := st.LookupImage(ctx, v)
		if err != nil {
			return nil, fmt.Errorf("--filter %s=%s: %w", k, v, err)
		}
		if k == Before {
			return func(i store.Image) bool { return i.Created.Before(ref.Created) }, nil
		}
		return func(i store.Image) bool { return i.Created.After(ref.Created) }, nil
	case Label:
		return hasLabel(st, v), nil
	case NotLabel:
		has := hasLabel(st, v)
		return func(i store.Image) bool { return !has(i) }, nil
	case Until:
		t, err := parseUntil(v, now)
		if err != nil {
			return nil, err
		}
		return func(i store.Image) bool { return i.Created.Before(t) }, nil
	}
	return nil, fmt.Errorf("unknown --filter key %q", k)
}

// referenceMatches reports whether pattern (path.Match syntax) matches
// the stored name n or one of its parts: without the tag or digest,
// without the domain, without either, its last component with or without
// the tag or digest.
func referenceMatches(pattern, n string) bool {
	candidates := []string{n}
	if r, err := image.ParseReference(n); err == nil {
		suffix := ""
		switch {
		case r.Tag != "":
			suffix = ":" + r.Tag
		case r.Digest != "":
			suffix = "@" + r.Digest.String()
		}
		last := path.Base(r.Path)
		candidates = append(candidates, r.Name(), r.Path+suffix, r.Path, last+suffix, last)
	}
	for _, c := range candidates {
		if ok, _ := path.Match(pattern, c); ok {
			return true
		}
	}
	return false
}

// hasLabel matches images whose config has the label KEY, or KEY=VALUE.
func hasLabel(st *store.Store, v string) func(store.Image) bool {
	lk, lv, hasValue := strings.Cut(v, "=")
	return func(i store.Image) bool {
		raw, err := st.ImageConfig(i)
		if err != nil {
			return false
		}
		cfg, err := image.ParseConfig(raw)
		if err != nil {
			return false
		}
		got, ok := cfg.Config.Labels[lk]
		return ok && (!hasValue || got == lv)
	}
}

// parseUntil reads until=: a duration back from now ("24h", "90m"), a
// Unix timestamp, an RFC 3339 time or a date (2006-01-02).
func parseUntil(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Unix(0, int64(secs*1e9)), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad --filter until=%s: want a duration (24h), a Unix time or an RFC 3339 time", v)
}

// ListOptions say which images List returns.
type ListOptions struct {
	// All keeps intermediate images: unnamed ones another image builds
	// on (the steps of a cached build).
	All bool
	// Filter selects images; the zero Filter keeps every one.
	Filter Filter
}

// List returns the stored images, newest first, that o selects.
func List(ctx context.Context, st *store.Store, o ListOptions) ([]store.Image, error) {
	imgs, err := st.Images(ctx)
	if err != nil {
		return nil, err
	}
	hide, err := intermediates(ctx, st, imgs, o.All)
	if err != nil {
		return nil, err
	}
	out := imgs[:0]
	for _, img := range imgs {
		if o.Filter.Match(img) && !hide[img.ID] {
			out = append(out, img)
		}
	}
	return out, nil
}

// intermediates are the unnamed images that are steps of a cached build
// (build cache entries) with another image on top of them; `images` shows
// them only with --all. An unnamed image a commit left behind (its name
// moved to a newer commit) is dangling, not intermediate, even when the
// newer commit builds on it: kiln's commit continues the container on
// the committed layer, where Buildah's copies it.
func intermediates(ctx context.Context, st *store.Store, imgs []store.Image, all bool) (map[string]bool, error) {
	hide := map[string]bool{}
	if all {
		return hide, nil
	}
	return intermediateSet(ctx, st, imgs)
}

func intermediateSet(ctx context.Context, st *store.Store, imgs []store.Image) (map[string]bool, error) {
	out := map[string]bool{}
	entries, err := st.CacheEntries(ctx)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return out, nil
	}
	listed, err := listedImages(ctx, st)
	if err != nil {
		return nil, err
	}
	cached := make(map[string]bool, len(entries))
	for _, e := range entries {
		cached[e.ImageID] = !listed[e.ImageID]
	}
	parents, err := st.ParentLayers(ctx)
	if err != nil {
		return nil, err
	}
	newest := map[string]time.Time{} // per top layer: a config-only step's child is newer
	for _, img := range imgs {
		if t, ok := newest[img.TopLayer]; !ok || img.Created.After(t) {
			newest[img.TopLayer] = img.Created
		}
	}
	for _, img := range imgs {
		if len(img.Names) == 0 && cached[img.ID] && (parents[img.TopLayer] || img.Created.Before(newest[img.TopLayer])) {
			out[img.ID] = true
		}
	}
	return out, nil
}
