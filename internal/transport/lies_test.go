package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A registry that lies: the real docker-registry behind faultProxy, which
// rewrites what it answers. docker-registry itself verifies what is
// pushed, so the lies are told on the way out, as a compromised mirror or
// a broken cache would tell them. Copy must refuse every lie that breaks
// what a digest or size promises, within a bounded time, and must never
// store content under a digest it does not hash to.

// lie answers a request instead of the registry when it returns true.
type lie func(w http.ResponseWriter, r *http.Request) bool

func isBlobGet(r *http.Request, d digest.Digest) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+d.String())
}

func isManifestGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/")
}

// serveBlob answers with b as the blob, with a Content-Length unless
// length is negative (then the body is chunked).
func serveBlob(w http.ResponseWriter, b []byte, length int) {
	if length >= 0 {
		w.Header().Set("Content-Length", strconv.Itoa(length))
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// rewriteManifest answers manifest requests with the registry's manifest
// changed by edit, without a Docker-Content-Digest header (a tag's
// manifest cannot then be checked) and with the registry's Content-Type
// unless contentType is set.
func rewriteManifest(reg *testRegistry, contentType string, edit func(m map[string]any)) lie {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !isManifestGet(r) {
			return false
		}
		resp, b, err := fetch(reg, r)
		if err != nil {
			return false
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return false
		}
		if edit != nil {
			edit(m)
			b, _ = json.Marshal(m)
		}
		if contentType == "" {
			contentType = resp.Header.Get("Content-Type")
		}
		w.Header().Set("Content-Type", contentType)
		w.Write(b)
		return true
	}
}

// layerField sets field of the first layer descriptor of m.
func layerField(field string, v any) func(m map[string]any) {
	return func(m map[string]any) {
		m["layers"].([]any)[0].(map[string]any)[field] = v
	}
}

// checkStored fails the test if a blob of the layout does not hash to
// its name.
func checkStored(t *testing.T, layout string) {
	t.Helper()
	dir := filepath.Join(layout, "blobs", "sha256")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != d.Name() {
			t.Errorf("%s holds content hashing to sha256:%x", p, sum)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRegistryLies(t *testing.T) {
	reg := startRegistry(t, false)
	sys := reg.sys(t)
	img := testImage(t, 2, "amd64")
	want := copyRef(t, sys, img, "docker://"+reg.host+"/kiln/lies:v1", CopyOptions{})
	var m ocispec.Manifest
	if err := json.Unmarshal(img.manifest, &m); err != nil {
		t.Fatal(err)
	}
	layer, cfg := m.Layers[0], m.Config
	layerBytes := img.blobs[layer.Digest]
	flipped := bytes.Clone(layerBytes)
	flipped[len(flipped)/2] ^= 0xff
	byDigest := "kiln/lies@" + want.String()
	copyRef(t, sys, testIndex(t), "docker://"+reg.host+"/kiln/lies-index:v1", CopyOptions{All: true})
	childOnly := func(l lie) lie { // lies about the manifests an index names
		return func(w http.ResponseWriter, r *http.Request) bool {
			return strings.Contains(r.URL.Path, "/manifests/sha256:") && l(w, r)
		}
	}

	tests := []struct {
		name    string
		ref     string
		lie     lie
		wantErr error // nil: the copy must succeed with the original digest
	}{
		{"layer content does not match its digest", "kiln/lies:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobGet(r, layer.Digest) {
				return false
			}
			serveBlob(w, flipped, len(flipped))
			return true
		}, ErrDigestMismatch},
		{"config does not match its digest", "kiln/lies:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobGet(r, cfg.Digest) {
				return false
			}
			b := bytes.Clone(img.blobs[cfg.Digest])
			b[len(b)-2] = ' '
			serveBlob(w, b, len(b))
			return true
		}, ErrDigestMismatch},
		{"another layer served for the layer, at the right length", "kiln/lies:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobGet(r, layer.Digest) {
				return false
			}
			b := make([]byte, len(layerBytes))
			copy(b, img.blobs[m.Layers[1].Digest])
			serveBlob(w, b, len(b))
			return true
		}, ErrDigestMismatch},
		{"layer longer than the manifest says", "kiln/lies:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobGet(r, layer.Digest) {
				return false
			}
			b := append(bytes.Clone(layerBytes), make([]byte, 100)...)
			serveBlob(w, b, len(b))
			return true
		}, ErrSizeMismatch},
		{"layer shorter than the manifest says, cleanly ended", "kiln/lies:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobGet(r, layer.Digest) {
				return false
			}
			serveBlob(w, layerBytes[:len(layerBytes)-10], len(layerBytes)-10)
			return true
		}, ErrSizeMismatch},
		{"layer that never ends", "kiln/lies:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobGet(r, layer.Digest) {
				return false
			}
			w.WriteHeader(http.StatusOK)
			w.Write(layerBytes)
			zeros := make([]byte, 64<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(zeros); err != nil {
					break
				}
			}
			return true
		}, ErrSizeMismatch},
		{"layer claiming a Content-Length of 1 TiB", "kiln/lies:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobGet(r, layer.Digest) {
				return false
			}
			serveBlob(w, layerBytes, 1<<40) // the server cuts the short body
			return true
		}, errAnyLie},
		{"manifest (by tag, unverifiable) with a layer size too small", "kiln/lies:v1", rewriteManifest(reg, "", layerField("size", layer.Size-1)), ErrSizeMismatch},
		{"manifest (by tag, unverifiable) with a layer size too large", "kiln/lies:v1", rewriteManifest(reg, "", layerField("size", layer.Size+1)), ErrSizeMismatch},
		{"manifest (by tag, unverifiable) with a layer of 1 TiB", "kiln/lies:v1", rewriteManifest(reg, "", layerField("size", int64(1)<<40)), ErrSizeMismatch},
		{"manifest (by tag, unverifiable) with a config of 64 MiB", "kiln/lies:v1", rewriteManifest(reg, "", func(m map[string]any) {
			m["config"].(map[string]any)["size"] = 64 << 20
		}), ErrTooLarge},
		{"manifest (by tag, unverifiable) naming a digest as a path", "kiln/lies:v1", rewriteManifest(reg, "", layerField("digest", "sha256:../../../../etc/passwd")), errAnyLie},
		{"manifest by digest, rewritten", byDigest, rewriteManifest(reg, "", layerField("size", layer.Size-1)), ErrDigestMismatch},
		{"manifest by digest served as an index", byDigest, rewriteManifest(reg, ocispec.MediaTypeImageIndex, nil), nil},
		{"manifest by digest served as text/html", byDigest, rewriteManifest(reg, "text/html", nil), nil},
		{"manifest (by tag, unverifiable) whose mediaType says index", "kiln/lies:v1", rewriteManifest(reg, "", func(m map[string]any) {
			m["mediaType"] = ocispec.MediaTypeImageIndex
		}), ErrNoMatchingPlatform},
		{"manifest (by tag, unverifiable) whose mediaType is schema 1", "kiln/lies:v1", rewriteManifest(reg, "", func(m map[string]any) {
			m["mediaType"] = "application/vnd.docker.distribution.manifest.v1+prettyjws"
		}), errAnyLie},
		{"index naming a manifest that does not match its digest", "kiln/lies-index:v1", childOnly(rewriteManifest(reg, "", func(m map[string]any) {
			m["annotations"] = map[string]any{"lie": "yes"}
		})), ErrDigestMismatch},
		{"manifest of 8 MiB", "kiln/lies:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if !isManifestGet(r) {
				return false
			}
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write([]byte(`{"annotations":{"a":"` + strings.Repeat("x", 8<<20) + `"}}`))
			return true
		}, ErrTooLarge},
		{"manifest that never ends", "kiln/lies:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if !isManifestGet(r) {
				return false
			}
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write([]byte(`{"annotations":{"a":"`))
			x := bytes.Repeat([]byte("x"), 64<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(x); err != nil {
					break
				}
			}
			return true
		}, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host := faultProxy(t, reg, tc.lie)
			layout := filepath.Join(t.TempDir(), "layout")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			got, err := copyOnce(ctx, t, sys, "docker://"+host+"/"+tc.ref, "oci:"+layout+":x")
			t.Logf("copy: %v (%v)", err, time.Since(start).Round(time.Millisecond))
			if elapsed := time.Since(start); elapsed > 20*time.Second {
				t.Errorf("the copy took %v", elapsed)
			}
			checkStored(t, layout)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("copy: %v, want success", err)
			case tc.wantErr == nil && got != want:
				t.Errorf("copied %s, want %s", got, want)
			case tc.wantErr == nil:
			case err == nil:
				t.Fatalf("copy succeeded (%s), want %v", got, tc.wantErr)
			case tc.wantErr != errAnyLie && !errors.Is(err, tc.wantErr):
				t.Fatalf("copy: %v, want %v", err, tc.wantErr)
			default:
				if _, err := os.Stat(filepath.Join(layout, "index.json")); err == nil {
					t.Errorf("an index.json was written despite the error")
				}
			}
		})
	}
}

// errAnyLie stands for "some error" where the exact one does not matter.
var errAnyLie = errors.New("any error")

// copyOnce copies src to dst with one retry and no delay.
func copyOnce(ctx context.Context, t *testing.T, sys *SystemContext, src, dst string) (digest.Digest, error) {
	t.Helper()
	s, err := mustParse(t, src).NewSource(ctx, sys)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", src, err)
	}
	defer s.Close()
	d, err := mustParse(t, dst).NewDestination(ctx, sys)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return Copy(ctx, d, s, CopyOptions{Retry: 1, RetryDelay: time.Millisecond})
}
