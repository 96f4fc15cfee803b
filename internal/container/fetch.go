package container

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// ErrChecksum is wrapped when downloaded content does not match the
// checksum asked for.
var ErrChecksum = fmt.Errorf("checksum mismatch")

// IsURL reports whether s is an http or https URL: what ADD and a build
// context download (Download) rather than read from a path.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// Download fetches an http(s) URL into dir as ADD does: the file is named
// after the URL's last path element, has mode 0600 and the modification
// time of Last-Modified. When want is set the content must match it.
func Download(ctx context.Context, src, dir string, want digest.Digest) (string, error) {
	u, err := url.Parse(src)
	if err != nil {
		return "", fmt.Errorf("bad URL %q: %w", src, err)
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		return "", fmt.Errorf("fetching %s: the URL names no file; give a destination file name", src)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetching %s: %s", src, resp.Status)
	}
	file := filepath.Join(dir, name)
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	dg := digest.SHA256.Digester()
	if want != "" {
		dg = want.Algorithm().Digester()
	}
	if _, err := io.Copy(io.MultiWriter(f, dg.Hash()), resp.Body); err != nil {
		f.Close()
		return "", fmt.Errorf("fetching %s: %w", src, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if want != "" && dg.Digest() != want {
		os.Remove(file)
		return "", fmt.Errorf("fetching %s: %w: got %s, want %s", src, ErrChecksum, dg.Digest(), want)
	}
	mtime := time.Now()
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		mtime = lm
	}
	return file, os.Chtimes(file, mtime, mtime)
}
