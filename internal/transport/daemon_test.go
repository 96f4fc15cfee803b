package transport

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/internal/transport/dockerarchive"
)

// fakeDaemon implements POST /images/load and GET /images/NAME/get on a
// unix socket, keeping loaded archives by tag. It checks, like docker load,
// that every layer file hashes to its diff ID.
type fakeDaemon struct {
	mu     sync.Mutex
	images map[string][]byte
}

func startFakeDaemon(t *testing.T) (string, *fakeDaemon) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix sockets unavailable: %v", err)
	}
	fd := &fakeDaemon{images: map[string][]byte{}}
	srv := &http.Server{Handler: fd}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock, fd
}

func (fd *fakeDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/_ping":
		w.Write([]byte("OK"))
	case r.Method == http.MethodPost && r.URL.Path == "/images/load":
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = fd.load(b)
		}
		if err != nil {
			json.NewEncoder(w).Encode(map[string]any{"errorDetail": map[string]string{"message": err.Error()}})
			return
		}
		w.Write([]byte(`{"stream":"Loaded image"}` + "\n"))
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/get"):
		name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/images/"), "/get")
		fd.mu.Lock()
		b, ok := fd.images[dockerarchive.NormalizeTag(name)]
		fd.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"No such image: ` + name + `"}`))
			return
		}
		w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

func (fd *fakeDaemon) load(archive []byte) error {
	f, err := os.CreateTemp("", "fake-daemon-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	f.Write(archive)
	f.Close()
	src, err := dockerarchive.NewSource(f.Name(), "")
	if err != nil {
		return err
	}
	defer src.Close()
	// Copy checks every layer against its diff ID, as docker load does.
	layout := filepath.Join(filepath.Dir(f.Name()), filepath.Base(f.Name())+".oci")
	defer os.RemoveAll(layout)
	dst, err := mustParseNoT("oci:"+layout).NewDestination(context.Background(), nil)
	if err != nil {
		return err
	}
	if _, err := Copy(context.Background(), dst, src, CopyOptions{}); err != nil {
		return err
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	for _, tag := range src.RepoTags() {
		fd.images[dockerarchive.NormalizeTag(tag)] = archive
	}
	return nil
}

func mustParseNoT(s string) Ref {
	r, err := ParseReference(s)
	if err != nil {
		panic(err)
	}
	return r
}

func TestDaemonRoundTrip(t *testing.T) {
	host, fd := startFakeDaemon(t)
	sys := (*testRegistry)(nil).sys(t)
	sys.DaemonHost = host
	img := testImage(t, 2, "amd64")
	copyRef(t, sys, img, "docker-daemon:kiln/daemon:v1", CopyOptions{})
	if _, ok := fd.images["docker.io/kiln/daemon:v1"]; !ok {
		t.Fatalf("the daemon has no kiln/daemon:v1 after the push")
	}
	// The archive the daemon received is a valid docker-archive.
	tr := tar.NewReader(strings.NewReader(string(fd.images["docker.io/kiln/daemon:v1"])))
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
	if !names["manifest.json"] || len(names) != 4 {
		t.Errorf("archive entries %v, want manifest.json, a config and 2 layers", names)
	}
	src := openSource(t, sys, "docker-daemon:kiln/daemon:v1")
	info, err := Inspect(context.Background(), src, InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Layers) != 2 || info.Labels["kiln.test"] != "yes" {
		t.Errorf("inspect of the daemon's image = %+v", info)
	}
	layout := "oci:" + filepath.Join(t.TempDir(), "layout") + ":back"
	copyRef(t, sys, src, layout, CopyOptions{Compression: CompressionGzip})
	if _, err := mustParse(t, "docker-daemon:kiln/missing:v1").NewSource(context.Background(), sys); err == nil {
		t.Errorf("reading a missing image from the daemon succeeded")
	}
}
