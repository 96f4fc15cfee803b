package dockerfile

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testenv"
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

// TestAddGit: ADD of a git repository URL clones it (at #ref) into the
// destination, without .git unless --keep-git-dir.
func TestAddGit(t *testing.T) {
	testenv.NeedBinary(t, "git")
	st := testStore(t)
	work, served := t.TempDir(), t.TempDir()
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git(work, "init", "-q", "-b", "main")
	must(t, os.WriteFile(filepath.Join(work, "README"), []byte("v1\n"), 0o644))
	git(work, "add", ".")
	git(work, "commit", "-q", "-m", "one")
	git(work, "tag", "v1")
	must(t, os.WriteFile(filepath.Join(work, "README"), []byte("v2\n"), 0o644))
	git(work, "commit", "-q", "-am", "two")
	bare := filepath.Join(served, "repo.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", work, bare).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	git(bare, "update-server-info") // served over git's "dumb" HTTP protocol
	srv := httptest.NewServer(http.FileServer(http.Dir(served)))
	defer srv.Close()
	df := fmt.Sprintf("FROM busybox\nADD %s/repo.git#v1 /src/\nADD --keep-git-dir=true %s/repo.git /full/\n", srv.URL, srv.URL)
	img, out, err := buildIn(t, st, t.TempDir(), df, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	root := rootOf(t, st, img)
	if b, _ := os.ReadFile(filepath.Join(root, "src/README")); string(b) != "v1\n" {
		t.Errorf("/src/README = %q, want the v1 tag's", b)
	}
	if _, err := os.Stat(filepath.Join(root, "src/.git")); err == nil {
		t.Error("/src/.git exists without --keep-git-dir")
	}
	if _, err := os.Stat(filepath.Join(root, "full/.git")); err != nil {
		t.Errorf("--keep-git-dir: %v", err)
	}
}

// TestRunMountSSH: RUN --mount=type=ssh sees the build's agent socket at
// $SSH_AUTH_SOCK, and the socket's mount point stays out of the layer.
func TestRunMountSSH(t *testing.T) {
	st := testStore(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	must(t, err)
	defer l.Close()
	df := "FROM busybox\nRUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /ssh\n"
	img, out, err := buildIn(t, st, t.TempDir(), df, func(o *Options) { o.Run.SSHAuthSock = sock })
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	root := rootOf(t, st, img)
	if b, _ := os.ReadFile(filepath.Join(root, "ssh")); string(b) != "/run/buildkit/ssh_agent.0\n" {
		t.Errorf("/ssh = %q", b)
	}
	// The socket's stub goes; the directory made for it stays, as RUN
	// --mount's directories do (BuildKit 0.8, run-mount-stubs).
	if _, err := os.Lstat(filepath.Join(root, "run/buildkit/ssh_agent.0")); err == nil {
		t.Error("the agent socket's mount point is in the image")
	}
	if _, _, err := buildIn(t, st, t.TempDir(), "FROM busybox\nRUN --mount=type=ssh,required=true true\n", nil); err == nil {
		t.Error("a required ssh mount without --ssh did not fail")
	}
}
