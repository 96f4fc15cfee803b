package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// withXattrs copies the layer tar r to w, giving every entry the
// extended attributes its file has under root. Some drivers' diffs keep
// only security.capability; an export keeps them all (overlay's own
// trusted.overlay.* excepted).
func withXattrs(ctx context.Context, w io.Writer, r io.Reader, root string) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		if !strings.HasPrefix(path.Base(hdr.Name), ".wh.") {
			if err := addXattrs(hdr, filepath.Join(root, filepath.FromSlash(path.Clean("/"+hdr.Name)))); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

func addXattrs(hdr *tar.Header, p string) error {
	names, err := listXattrs(p)
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		v, err := getXattr(p, name)
		if err != nil {
			return err
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+name] = v
		hdr.Format = tar.FormatPAX
	}
	return nil
}

func listXattrs(p string) ([]string, error) {
	for size := 1024; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(p, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			continue
		case errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.ENOENT):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("listing xattrs of %s: %w", p, err)
		}
		var out []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name != "" {
				out = append(out, name)
			}
		}
		return out, nil
	}
}

func getXattr(p, name string) (string, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			continue
		case errors.Is(err, unix.ENODATA):
			return "", nil
		case err != nil:
			return "", fmt.Errorf("reading xattr %s of %s: %w", name, p, err)
		}
		return string(buf[:n]), nil
	}
}
