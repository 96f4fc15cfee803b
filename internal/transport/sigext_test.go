package transport

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/transport/registry"
)

// extensionRegistry speaks the signature extension of OpenShift's
// registry (containers/image's docs/signature-protocols.md), which no
// registry installed here has: /v2/ says X-Registry-Supports-Signatures,
// and /extensions/v2/REPO/signatures/DIGEST lists and adds signatures.
type extensionRegistry struct {
	mu   sync.Mutex
	sigs map[string][]map[string]any
}

func (e *extensionRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case r.URL.Path == "/v2/":
		w.Header().Set("X-Registry-Supports-Signatures", "1")
		w.WriteHeader(http.StatusOK)
	case strings.HasPrefix(r.URL.Path, "/extensions/v2/") && r.Method == http.MethodGet:
		json.NewEncoder(w).Encode(map[string]any{"signatures": e.sigs[r.URL.Path]})
	case strings.HasPrefix(r.URL.Path, "/extensions/v2/") && r.Method == http.MethodPut:
		var s map[string]any
		b, _ := io.ReadAll(r.Body)
		if json.Unmarshal(b, &s) != nil || s["type"] != "atomic" || s["schemaVersion"] != float64(2) {
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		e.sigs[r.URL.Path] = append(e.sigs[r.URL.Path], s)
		w.WriteHeader(http.StatusCreated)
	default:
		http.NotFound(w, r)
	}
}

func TestSignatureExtension(t *testing.T) {
	ext := &extensionRegistry{sigs: map[string][]map[string]any{}}
	srv := httptest.NewTLSServer(ext)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	repo, err := name.NewRepository(host + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := registry.NewClient(ctx, repo, []string{"pull", "push"}, registry.Options{Transport: srv.Client().Transport, Retry: -1})
	if err != nil {
		t.Fatal(err)
	}
	sys := &SystemContext{RegistriesDir: t.TempDir()}
	d := digest.FromString("manifest")
	dst := &registryDestination{name: host + "/team/app:1", sys: sys}
	sigs := [][]byte{{0x89, 1, 2}, {0xc4, 3}}
	for range 2 { // the second time adds nothing
		if err := dst.putSignaturesWith(ctx, c, d, sigs); err != nil {
			t.Fatal(err)
		}
	}
	got, err := registrySignatures(ctx, c, host+"/team/app:1", host+"/team/app", d, sys)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sigs, got); diff != "" {
		t.Errorf("signatures through the extension (-want +got):\n%s", diff)
	}
}
