package images

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

var _ dockerfile.RemoteCache = (*RegistryCache)(nil)

func TestCacheRepo(t *testing.T) {
	for _, tc := range []struct{ in, want, wantErr string }{
		{in: "registry.example.com/cache", want: "registry.example.com/cache"},
		{in: "docker://registry.example.com/cache", want: "registry.example.com/cache"},
		{in: "type=registry,ref=registry.example.com/cache", want: "registry.example.com/cache"},
		{in: "type=registry,ref=docker://r.example.com/c,mode=max", want: "r.example.com/c"},
		{in: "type=local,dest=/tmp/x", wantErr: `cache repository "type=local,dest=/tmp/x": want a registry repository such as registry.example.com/cache`},
		{in: "r.example.com/c@sha256:0123", wantErr: `cache repository "r.example.com/c@sha256:0123": want a registry repository such as registry.example.com/cache`},
		{in: "docker://", wantErr: `cache repository "": want a registry repository such as registry.example.com/cache`},
	} {
		got, err := cacheRepo(tc.in)
		if errString(err) != tc.wantErr || got != tc.want {
			t.Errorf("cacheRepo(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	if c, err := NewRegistryCache(nil, RegistryCacheOptions{}); c != nil || err != nil {
		t.Errorf("NewRegistryCache without repositories = %v, %v; want nil, nil", c, err)
	}
}

// TestRegistryCache stores a step from one store and fetches it into
// another: a key the registry lacks is a miss, and so is a repository
// that cannot be reached (with a warning).
func TestRegistryCache(t *testing.T) {
	ctx := context.Background()
	reg, base := registryBase(t)
	sys := testSystem(t)
	src := newStore(t)
	img, err := Pull(ctx, src, base.Ref, PullOptions{System: sys})
	must(t, err)
	repo := reg.Host + "/cache"
	w, err := NewRegistryCache(src, RegistryCacheOptions{To: "type=registry,ref=" + repo, System: sys})
	must(t, err)
	must(t, w.Store(ctx, "key1", img))

	dst := newStore(t)
	var logs bytes.Buffer
	dead := fmt.Sprintf("127.0.0.1:%d/cache", transporttest.FreePort(t))
	r, err := NewRegistryCache(dst, RegistryCacheOptions{From: []string{dead, reg.Host + "/empty", "docker://" + repo}, System: sys, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	must(t, err)
	got, ok, err := r.Fetch(ctx, "key1")
	if err != nil || !ok || got.ID != img.ID {
		t.Errorf("Fetch(key1) = %s, %v, %v; want %s, true", got.ID, ok, err, img.ID)
	}
	if !strings.Contains(logs.String(), "cache source unavailable") || !strings.Contains(logs.String(), dead) {
		t.Errorf("no warning for the unreachable repository; logs:\n%s", logs.String())
	}
	if _, ok, err := r.Fetch(ctx, "key2"); ok || err != nil {
		t.Errorf("Fetch(key2) = %v, %v; want a miss", ok, err)
	}
	if err := r.Store(ctx, "key1", got); err != nil {
		t.Errorf("Store without a To repository: %v", err)
	}
}
