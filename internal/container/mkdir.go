package container

import (
	"context"
	"fmt"
	"os"
	"path"

	cfs "github.com/containerd/continuity/fs"
)

// MkdirAll makes directory p (absolute in the container) and its
// missing parents; those it creates belong to user ("" is root), resolved
// in the container's /etc/passwd and /etc/group. It reports whether it
// created anything. Symlinks resolve inside the root.
func (c *Container) MkdirAll(ctx context.Context, p, user string) (bool, error) {
	created := false
	err := c.withMount(ctx, func(root string) error {
		p = path.Clean("/" + p)
		if full, err := cfs.RootPath(root, p); err == nil {
			if fi, err := os.Stat(full); err == nil && fi.IsDir() {
				return nil
			}
		}
		var owner ownership
		if user != "" {
			uid, gid, err := lookupUser(root, user)
			if err != nil {
				return fmt.Errorf("user %q: %w", user, err)
			}
			owner = ownership{uid: uid, gid: gid}
		}
		cp := copier{root: root, owner: owner, dirs: map[string]string{}}
		if _, err := cp.mkdirIn(p); err != nil {
			return err
		}
		created = true
		return nil
	})
	return created, err
}
