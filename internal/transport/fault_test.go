package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// faultProxy sits in front of a real registry and breaks what fault says.
func faultProxy(t *testing.T, reg *testRegistry, fault func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	target, _ := url.Parse("http://" + reg.host)
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fault(w, r) {
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// fetch returns the response of the real registry for r.
func fetch(reg *testRegistry, r *http.Request) (*http.Response, []byte, error) {
	req, _ := http.NewRequest(r.Method, "http://"+reg.host+r.URL.Path, nil)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestRegistryFaults(t *testing.T) {
	reg := startRegistry(t, false)
	sys := reg.sys(t)
	img := testImage(t, 2, "amd64")
	want := copyRef(t, sys, img, "docker://"+reg.host+"/kiln/fault:v1", CopyOptions{})
	isBlob := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
	}
	isManifest := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/")
	}

	var fails atomic.Int32
	tests := []struct {
		name    string
		ref     string
		fault   func(w http.ResponseWriter, r *http.Request) bool
		wantErr error // nil: the copy must succeed
	}{
		{"500 twice then success", "kiln/fault:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if (isBlob(r) || isManifest(r)) && fails.Add(1) <= 2 {
				http.Error(w, "boom", http.StatusInternalServerError)
				return true
			}
			return false
		}, nil},
		{"blob truncated mid-stream", "kiln/fault:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlob(r) {
				return false
			}
			_, b, err := fetch(reg, r)
			if err != nil {
				return false
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(http.StatusOK)
			w.Write(b[:len(b)/2])
			return true // the server closes the short response
		}, io.ErrUnexpectedEOF},
		{"manifest does not match its digest", "kiln/fault@" + want.String(), func(w http.ResponseWriter, r *http.Request) bool {
			if !isManifest(r) {
				return false
			}
			resp, b, err := fetch(reg, r)
			if err != nil {
				return false
			}
			w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
			w.Write(append(b, ' '))
			return true
		}, ErrDigestMismatch},
		{"tag whose manifest does not match Docker-Content-Digest", "kiln/fault:v1", func(w http.ResponseWriter, r *http.Request) bool {
			if !isManifest(r) {
				return false
			}
			resp, b, err := fetch(reg, r)
			if err != nil {
				return false
			}
			w.Header().Set("Docker-Content-Digest", resp.Header.Get("Docker-Content-Digest"))
			w.Write(append(b, ' '))
			return true
		}, ErrDigestMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fails.Store(0)
			host := faultProxy(t, reg, tc.fault)
			layout := filepath.Join(t.TempDir(), "layout")
			ctx := context.Background()
			src, err := mustParse(t, "docker://"+host+"/"+tc.ref).NewSource(ctx, sys)
			if err == nil {
				var dst Destination
				dst, err = mustParse(t, "oci:"+layout+":x").NewDestination(ctx, sys)
				if err != nil {
					t.Fatal(err)
				}
				var got = want
				got, err = Copy(ctx, dst, src, CopyOptions{RetryDelay: 1, Retry: 2})
				if err == nil && got != want {
					t.Errorf("digest %s, want %s", got, want)
				}
			}
			if tc.wantErr == nil && err != nil {
				t.Fatalf("copy: %v", err)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("copy: %v, want %v", err, tc.wantErr)
				}
				if _, err := os.Stat(filepath.Join(layout, "index.json")); err == nil {
					t.Errorf("an index.json was written despite the error")
				}
			}
		})
	}
}
