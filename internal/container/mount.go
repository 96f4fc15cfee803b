package container

import "context"

// Mount mounts the container's root filesystem (counting users across
// processes) and returns its path.
func (c *Container) Mount(ctx context.Context) (string, error) {
	p, err := c.st.Mount(ctx, c.rec.ID)
	if err != nil {
		return "", err
	}
	c.State.MountPoint = p
	c.rec.MountCount++
	return p, nil
}

// Unmount drops one user of the mount, or all of them with force.
func (c *Container) Unmount(ctx context.Context, force bool) error {
	if err := c.st.Unmount(ctx, c.rec.ID, force); err != nil {
		return err
	}
	c.State.MountPoint = ""
	return nil
}

// withMount runs fn with the root filesystem mounted, then releases it.
func (c *Container) withMount(ctx context.Context, fn func(root string) error) error {
	root, err := c.st.Mount(ctx, c.rec.ID)
	if err != nil {
		return err
	}
	ferr := fn(root)
	uerr := c.st.Unmount(ctx, c.rec.ID, false)
	if ferr != nil {
		return ferr
	}
	return uerr
}
