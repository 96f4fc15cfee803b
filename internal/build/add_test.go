package build

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAddURL: ADD fetches a URL (mode 0600, its name from the URL), keys
// the cache by the content fetched, and refuses content that does not
// match --checksum.
func TestAddURL(t *testing.T) {
	st := testStore(t)
	body := "remote content\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT")
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(body)))
	df := fmt.Sprintf("FROM busybox\nADD %s/files/remote.txt /dl/\nADD --checksum=%s %s/files/remote.txt /checked.txt\n", srv.URL, sum, srv.URL)
	img, out, err := buildIn(t, st, t.TempDir(), df, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	root := rootOf(t, st, img)
	fi, err := os.Stat(filepath.Join(root, "dl/remote.txt"))
	must(t, err)
	if fi.Mode().Perm() != 0o600 || fi.ModTime().Unix() != 1700000000 {
		t.Errorf("fetched file: mode %o mtime %d, want 600 and Last-Modified", fi.Mode().Perm(), fi.ModTime().Unix())
	}
	if b, _ := os.ReadFile(filepath.Join(root, "checked.txt")); string(b) != body {
		t.Errorf("checked.txt = %q", b)
	}
	_, out, err = buildIn(t, st, t.TempDir(), df, nil)
	must(t, err)
	if n := strings.Count(out, "Using cache"); n != 2 {
		t.Errorf("rebuild with the same remote content: %d hits, want 2\n%s", n, out)
	}
	body = "changed\n"
	bad := fmt.Sprintf("FROM busybox\nADD --checksum=%s %s/files/remote.txt /checked.txt\n", sum, srv.URL)
	if _, _, err := buildIn(t, st, t.TempDir(), bad, nil); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("changed content with the old --checksum: %v, want a checksum mismatch", err)
	}
}
