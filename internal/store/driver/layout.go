package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/digestio"
)

// Layout is the on-disk shape both directory-based drivers share: one
// directory per snapshot under Home holding a content directory and a
// "parent" file; snapshots are made in ".tmp-ID" and renamed into place,
// and removed by renaming to ".rm-ID" first, so a crash never leaves a
// half-made snapshot under its real name.
type Layout struct {
	Home    string
	Content string       // name of the content directory inside a snapshot
	Logger  *slog.Logger // receives the notes of ApplyDiff; may be nil
}

// Dir is the snapshot's directory.
func (l Layout) Dir(id string) string { return filepath.Join(l.Home, id) }

// ContentDir is the snapshot's content directory.
func (l Layout) ContentDir(id string) string { return filepath.Join(l.Home, id, l.Content) }

// ExistingContent returns the snapshot's content directory when it exists.
func (l Layout) ExistingContent(id string) (string, error) {
	if !l.Exists(id) {
		return "", fmt.Errorf("%w: %s", ErrNotExist, id)
	}
	return l.ContentDir(id), nil
}

// Exists reports whether the snapshot was completed.
func (l Layout) Exists(id string) bool {
	_, err := os.Stat(filepath.Join(l.Home, id, l.Content))
	return err == nil
}

// Parent reads the snapshot's parent id.
func (l Layout) Parent(id string) (string, error) {
	if !l.Exists(id) {
		return "", fmt.Errorf("%w: %s", ErrNotExist, id)
	}
	return l.readParent(l.Dir(id))
}

func (l Layout) readParent(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "parent"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

// Chain returns id and its ancestors, id first.
func (l Layout) Chain(id string) ([]string, error) {
	var chain []string
	for cur := id; cur != ""; {
		if len(chain) > 1<<16 {
			return nil, fmt.Errorf("snapshot %s: parent chain too long or cyclic", id)
		}
		chain = append(chain, cur)
		p, err := l.Parent(cur)
		if err != nil {
			return nil, err
		}
		cur = p
	}
	return chain, nil
}

// Create makes snapshot id through a temp directory; fill populates the
// content directory (it may be nil for an empty one). The parent must
// exist, unless fill is nil and the caller makes sure it exists before
// the snapshot is used (ParentAtMount).
func (l Layout) Create(id, parent string, fill func(content string) error) error {
	if err := ValidID(id); err != nil {
		return err
	}
	if l.Exists(id) {
		return fmt.Errorf("%w: %s", ErrExist, id)
	}
	if parent != "" && fill != nil && !l.Exists(parent) {
		return fmt.Errorf("parent %w: %s", ErrNotExist, parent)
	}
	tmp := filepath.Join(l.Home, ".tmp-"+id)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	_ = os.RemoveAll(l.Dir(id))
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if parent != "" {
		if err := digestio.WriteFileAtomic(filepath.Join(tmp, "parent"), []byte(parent), 0o600); err != nil {
			return err
		}
	}
	content := filepath.Join(tmp, l.Content)
	if fill != nil {
		if err := fill(content); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(content, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, l.Dir(id))
}

// Remove renames the snapshot out of the way, then deletes it.
func (l Layout) Remove(id string) error {
	if err := ValidID(id); err != nil {
		return err
	}
	_ = os.RemoveAll(filepath.Join(l.Home, ".tmp-"+id))
	gone := filepath.Join(l.Home, ".rm-"+id)
	if err := os.Rename(l.Dir(id), gone); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing snapshot %s: %w", id, err)
	}
	return os.RemoveAll(gone)
}

// Promote moves from's content into a new snapshot to with from's parent,
// then makes from a child of to whose content refill provides (an empty
// directory for overlay, a copy of to's tree for vfs). Every step checks
// what is already done, so calling it again after a crash finishes it.
func (l Layout) Promote(from, to string, refill func(toContent, fromContent string) error) error {
	if err := ValidID(to); err != nil {
		return err
	}
	if !l.Exists(to) {
		tmp := filepath.Join(l.Home, ".tmp-"+to)
		parent, err := l.readParent(l.Dir(from))
		if err != nil {
			return err
		}
		if _, err := os.Stat(tmp); err == nil {
			// A crash left the move half done: tmp holds the truth.
			if parent, err = l.readParent(tmp); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return err
		}
		if parent != "" {
			if err := digestio.WriteFileAtomic(filepath.Join(tmp, "parent"), []byte(parent), 0o600); err != nil {
				return err
			}
		}
		if _, err := os.Stat(filepath.Join(tmp, l.Content)); errors.Is(err, os.ErrNotExist) {
			if err := os.Rename(l.ContentDir(from), filepath.Join(tmp, l.Content)); err != nil {
				return fmt.Errorf("moving writes of %s into %s: %w", from, to, err)
			}
		}
		if err := os.Rename(tmp, l.Dir(to)); err != nil {
			return err
		}
	}
	if err := digestio.WriteFileAtomic(filepath.Join(l.Dir(from), "parent"), []byte(to), 0o600); err != nil {
		return err
	}
	if _, err := os.Stat(l.ContentDir(from)); err == nil {
		return nil
	}
	tmp := filepath.Join(l.Dir(from), ".tmp-"+l.Content)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := refill(l.ContentDir(to), tmp); err != nil {
		return err
	}
	return os.Rename(tmp, l.ContentDir(from))
}

// The methods below implement parts of driver.Driver for the drivers that
// keep every snapshot whole on disk (vfs, btrfs), which embed Layout.

// ApplyDiff applies a layer tar to the snapshot's tree.
func (l Layout) ApplyDiff(ctx context.Context, id string, r io.Reader) (int64, error) {
	if !l.Exists(id) {
		return 0, fmt.Errorf("%w: %s", ErrNotExist, id)
	}
	return archive.Apply(ctx, l.ContentDir(id), r, archive.ApplyOptions{Logger: l.Logger})
}

// Diff writes the layer tar of snapshot id by comparing its tree with its
// parent's.
func (l Layout) Diff(ctx context.Context, id string, w io.Writer, opts DiffOptions) error {
	parent, err := l.Parent(id)
	if err != nil {
		return err
	}
	lower := ""
	if parent != "" {
		lower = l.ContentDir(parent)
	}
	return archive.WriteTreeDiff(ctx, w, lower, l.ContentDir(id), archive.DiffOptions{ModTimeUpperBound: opts.ModTimeUpperBound})
}

// Mounted reports whether the snapshot exists: a whole tree is always
// reachable.
func (l Layout) Mounted(id string) (bool, error) { return l.Exists(id), nil }

// Unmount does nothing: a whole tree is never mounted.
func (l Layout) Unmount(ctx context.Context, id string) error { return nil }

// Size counts the bytes of the snapshot's whole tree.
func (l Layout) Size(ctx context.Context, id string) (int64, error) {
	return DirSize(l.ContentDir(id))
}
