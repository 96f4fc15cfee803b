package run

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolveUser(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(testPasswd+"# comment\nbroken\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte(testGroup), 0o644)
	root, err := openRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	tests := []struct {
		spec string
		want execUser
		err  error
	}{
		{spec: "", want: execUser{UID: 0, GID: 0, Home: "/root"}},
		{spec: "root", want: execUser{Home: "/root"}},
		{spec: "alice", want: execUser{UID: 1000, GID: 1000, Groups: []uint32{29, 44}, Home: "/home/alice"}},
		{spec: "1000", want: execUser{UID: 1000, GID: 1000, Groups: []uint32{29, 44}, Home: "/home/alice"}},
		{spec: "bob", want: execUser{UID: 1001, GID: 1001, Groups: []uint32{44}, Home: "/home/bob"}},
		{spec: "alice:video", want: execUser{UID: 1000, GID: 44, Home: "/home/alice"}},
		{spec: "1001:29", want: execUser{UID: 1001, GID: 29, Home: "/home/bob"}},
		{spec: "5000:6000", want: execUser{UID: 5000, GID: 6000, Home: "/"}},
		{spec: "5000", want: execUser{UID: 5000, GID: 0, Home: "/"}},
		{spec: "mallory", err: ErrUnknownUser},
		{spec: "alice:nogroup", err: ErrUnknownUser},
		{spec: "alice:", err: ErrUnknownUser},
	}
	for _, tt := range tests {
		got, err := resolveUser(root, tt.spec)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("resolveUser(%q) error = %v, want %v", tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("resolveUser(%q): %v", tt.spec, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("resolveUser(%q) (-want +got):\n%s", tt.spec, diff)
		}
	}
	// Buildah's words for a user the image lacks, which scripts match.
	_, err = resolveUser(root, "mallory")
	if want := `unknown user error looking up user "mallory": not in the image's /etc/passwd`; err == nil || err.Error() != want {
		t.Errorf("resolveUser(mallory) error = %v, want %q", err, want)
	}
}

// TestResolveUserSymlinkStaysInRoot: an /etc/passwd that is a symlink to
// the host's must be read inside the root filesystem.
func TestResolveUserSymlinkStaysInRoot(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(dir, "etc/passwd"))
	os.Symlink("../../../../../../../etc/group", filepath.Join(dir, "etc/group"))
	root, err := openRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := resolveUser(root, "root"); err == nil {
		t.Errorf("resolveUser read the host's /etc/passwd: err = %v", err)
	}
	// An /etc/passwd that is a symlink to itself names no user, as
	// Buildah says ("unknown user").
	loop := t.TempDir()
	os.MkdirAll(filepath.Join(loop, "etc"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(loop, "etc/passwd"))
	lroot, err := openRoot(loop)
	if err != nil {
		t.Fatal(err)
	}
	defer lroot.Close()
	if _, err := resolveUser(lroot, "jimbo:jimbogroup"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("resolveUser with a looping /etc/passwd: err = %v, want ErrUnknownUser", err)
	}
}

func TestEnsureAndRemoveInRoot(t *testing.T) {
	dir := t.TempDir()
	host := t.TempDir()
	os.Symlink(host, filepath.Join(dir, "link"))
	os.Symlink("../../target/file", filepath.Join(dir, "dangling"))
	root, err := openRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	created, err := ensureInRoot(root, "/link/a/b", false)
	if err != nil {
		t.Fatal(err)
	}
	more, err := ensureInRoot(root, "/dangling", true)
	if err != nil {
		t.Fatal(err)
	}
	created = append(created, more...)
	var want []string
	for p := host; p != "/"; p = filepath.Dir(p) {
		want = append([]string{p}, want...)
	}
	want = append(want, host+"/a", host+"/a/b", "/target", "/target/file")
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if entries, _ := os.ReadDir(host); len(entries) != 0 {
		t.Errorf("ensureInRoot wrote to the host directory: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(dir, host, "a/b")); err != nil {
		t.Errorf("in-root target missing: %v", err)
	}
	if err := removeInRoot(root, created); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "target")); !os.IsNotExist(err) {
		t.Errorf("/target not removed: %v", err)
	}
}
