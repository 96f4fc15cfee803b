package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// mountsUnder lists the mount points strictly under dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (bool, bool) {
		return !strings.HasPrefix(m.Mountpoint, dir+"/"), false
	})
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Mountpoint
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// mounts finds mounts in the driver's home that no container's mount
// count accounts for, and containers counted as mounted that are not.
func (c *checker) mounts(ctx context.Context) error {
	in, err := c.s.readInventory(ctx)
	if err != nil {
		return err
	}
	mps, err := mountsUnder(c.s.driver.Home())
	if err != nil {
		return err
	}
	for _, mp := range mps {
		rel, _ := filepath.Rel(c.s.driver.Home(), mp)
		id, _, _ := strings.Cut(rel, "/")
		if in.mounts[id] > 0 {
			continue
		}
		c.add(Problem{Kind: ProblemLeakedMount, Object: mp, Detail: "mounted, but no container counts it"},
			func() error { return unix.Unmount(mp, 0) })
	}
	for _, ct := range in.containers {
		if ct.MountCount == 0 {
			continue
		}
		if m, err := c.s.driver.Mounted(ct.ID); err == nil && !m {
			c.add(Problem{Kind: ProblemStaleMountCount, Object: ct.Name, Detail: fmt.Sprintf("counted %d times as mounted, not mounted", ct.MountCount)},
				func() error {
					return c.s.updateContainer(ctx, ct.ID, `UPDATE containers SET mount_count=0 WHERE id=? AND mount_count>0`, ct.ID)
				})
		}
	}
	return nil
}

// UnmountUnder unmounts everything mounted under dir except under skip
// (""), deepest first, lazily when a mount is busy, and returns what it
// unmounted. For reset and migrate, when no kiln process uses the store.
func UnmountUnder(dir, skip string) ([]string, error) {
	mps, err := mountsUnder(dir)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, mp := range mps {
		if skip != "" && (mp == skip || strings.HasPrefix(mp, skip+"/")) {
			continue
		}
		if err := unix.Unmount(mp, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return done, fmt.Errorf("unmounting %s: %w", mp, err)
			}
		}
		done = append(done, mp)
	}
	return done, nil
}
