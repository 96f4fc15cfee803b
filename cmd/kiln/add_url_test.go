package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestAddURL: `kiln add` fetches an http URL into the container: named
// after the URL, mode 0600 (as Buildah and Docker), owned per --chown,
// its mtime from Last-Modified; a 404 is an error naming the URL.
func TestAddURL(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pkg/tool.sh" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT")
		fmt.Fprint(w, "#!/bin/sh\necho tool\n")
	}))
	defer srv.Close()
	c := e.mustKiln("from", "localhost/busybox")
	e.mustKiln("add", "--chown", "app:app", c, srv.URL+"/pkg/tool.sh", "/opt/")
	mp := e.mustKiln("mount", c)
	fi, err := os.Stat(filepath.Join(mp, "opt/tool.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.ModTime().Unix() != 1700000000 {
		t.Errorf("mode %o mtime %d, want 600 and Last-Modified", fi.Mode().Perm(), fi.ModTime().Unix())
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("owner %d:%d, want 1000:1000 (--chown app:app)", st.Uid, st.Gid)
	}
	_, errOut, code := e.kiln("add", c, srv.URL+"/missing.txt", "/opt/")
	if code != 125 || !strings.Contains(errOut, "/missing.txt") || !strings.Contains(errOut, "404") {
		t.Errorf("404: exit %d, %q", code, errOut)
	}
}
