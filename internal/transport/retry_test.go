package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiln-build/kiln/internal/transport/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestBlobTriedRetryPlusOne: a blob transfer that keeps failing with a
// retryable error (a 500) is tried Retry+1 times in all, pulled or
// pushed: the copy engine retries a whole blob, and the registry client
// does not retry inside it (it did: up to 4×4 tries).
func TestBlobTriedRetryPlusOne(t *testing.T) {
	reg := startRegistry(t, false)
	sys := reg.sys(t) // the client's own Retry is its default, 3
	img := testImage(t, 1, "amd64")
	copyRef(t, sys, img, "docker://"+reg.host+"/kiln/retry:v1", CopyOptions{})
	var m ocispec.Manifest
	if err := json.Unmarshal(img.manifest, &m); err != nil {
		t.Fatal(err)
	}
	layer := m.Layers[0].Digest
	tests := []struct {
		name  string
		fails func(r *http.Request) bool
		// src and dst are references; HOST is the fault proxy, LAYOUT an
		// OCI layout that holds the image and EMPTY one that does not.
		src, dst string
	}{
		{"pull: GET of a layer", func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+layer.String())
		}, "docker://HOST/kiln/retry:v1", "oci:EMPTY:x"},
		{"push: POST that starts an upload", func(r *http.Request) bool {
			return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") && r.URL.Query().Get("mount") == ""
		}, "oci:LAYOUT:x", "docker://HOST/kiln/pushed:v1"},
	}
	for _, retries := range []int{1, 2} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s, Retry %d", tc.name, retries), func(t *testing.T) {
				layout, empty := filepath.Join(t.TempDir(), "layout"), filepath.Join(t.TempDir(), "empty")
				copyRef(t, sys, img, "oci:"+layout+":x", CopyOptions{})
				var tries atomic.Int32
				host := faultProxy(t, reg, func(w http.ResponseWriter, r *http.Request) bool {
					if !tc.fails(r) {
						return false
					}
					tries.Add(1)
					http.Error(w, "boom", http.StatusInternalServerError)
					return true
				})
				expand := func(s string) string {
					return strings.NewReplacer("HOST", host, "LAYOUT", layout, "EMPTY", empty).Replace(s)
				}
				ctx := context.Background()
				src := openSource(t, sys, expand(tc.src))
				dst, err := mustParse(t, expand(tc.dst)).NewDestination(ctx, sys)
				if err != nil {
					t.Fatal(err)
				}
				defer dst.Close()
				// One blob at a time: the first to fail stops the copy.
				_, err = Copy(ctx, dst, src, CopyOptions{Retry: retries, RetryDelay: 1, Parallel: 1})
				var se *registry.StatusError
				if !errors.As(err, &se) || se.StatusCode != http.StatusInternalServerError {
					t.Fatalf("Copy = %v, want the registry's 500", err)
				}
				if got, want := int(tries.Load()), retries+1; got != want {
					t.Errorf("the failing request was sent %d times, want Retry+1 = %d", got, want)
				}
			})
		}
	}
}

// TestReadImageRetriesConfig: the config ReadImage fetches is a blob too,
// retried by the copy engine's retry now that the client does not.
func TestReadImageRetriesConfig(t *testing.T) {
	reg := startRegistry(t, false)
	sys := reg.sys(t)
	img := testImage(t, 1, "amd64")
	copyRef(t, sys, img, "docker://"+reg.host+"/kiln/config:v1", CopyOptions{})
	var m ocispec.Manifest
	if err := json.Unmarshal(img.manifest, &m); err != nil {
		t.Fatal(err)
	}
	var tries atomic.Int32
	host := faultProxy(t, reg, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+m.Config.Digest.String()) {
			return false
		}
		if tries.Add(1) == 1 {
			http.Error(w, "boom", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	got, err := ReadImage(context.Background(), openSource(t, sys, "docker://"+host+"/kiln/config:v1"), Platform{})
	if err != nil {
		t.Fatalf("ReadImage: %v", err)
	}
	if got.Config.Config.Labels["kiln.test"] != "yes" {
		t.Errorf("config labels %v, want kiln.test=yes", got.Config.Config.Labels)
	}
	if n := tries.Load(); n != 2 {
		t.Errorf("config fetched %d times, want 2", n)
	}
}
