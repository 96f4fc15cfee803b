package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const (
	mib            = 1 << 20
	memLimit       = 150 * mib
	bigFiles       = 256 // of 4 MiB: 1 GiB
	bigFileSize    = 4 * mib
	imagesInStore  = 1000
	runOverheadCmd = "true"
)

// tool abstracts over kiln and buildah for the verbs they share.
type tool struct {
	name string
	cmd  func(args ...string) []string
}

func (b *bench) tools() []tool {
	return []tool{{"kiln", b.kiln}, {"buildah", b.buildah}}
}

// fillContainer makes container name from image and copies dir into it
// through its mount point, then syncs, so the timed step starts with
// the data written out.
func fillContainer(ctx context.Context, t tool, name, image, dir string) error {
	sh(ctx, nil, t.cmd("rm", name)...)
	if _, err := sh(ctx, nil, t.cmd("from", "--name", name, image)...); err != nil {
		return err
	}
	mp, err := sh(ctx, nil, t.cmd("mount", name)...)
	if err != nil {
		return err
	}
	if _, err := sh(ctx, nil, "cp", "-a", dir, filepath.Join(mp, "data")); err != nil {
		return err
	}
	_, err = sh(ctx, nil, "sync")
	return err
}

// commitWorkload: commit a container holding 1 GiB of new files, against
// buildah commit and the floor, tar c | sha256sum of the same files.
func (b *bench) commitWorkload(runs int) *workload {
	data := b.path("data", "1g")
	w := &workload{name: "commit 1 GiB", what: "commit a working container holding 1 GiB of new files (256 × 4 MiB)", runs: runs}
	for _, t := range b.tools() {
		v := &variant{name: t.name, kiln: t.name == "kiln"}
		if !v.kiln {
			v.vs = "kiln"
		}
		v.prep = func(ctx context.Context, i int) error {
			return fillContainer(ctx, t, "bench-commit", "localhost/busybox", data)
		}
		v.steps = func(i int) [][]string {
			return [][]string{t.cmd("commit", "bench-commit", fmt.Sprintf("bench/commit:%d", i))}
		}
		v.post = func(ctx context.Context, i int) error {
			sh(ctx, nil, t.cmd("rm", "bench-commit")...)
			_, err := sh(ctx, nil, t.cmd("rmi", fmt.Sprintf("bench/commit:%d", i))...)
			return err
		}
		w.variants = append(w.variants, v)
	}
	w.variants = append(w.variants, &variant{name: "floor: tar c, sha256sum", vs: "kiln",
		prep: func(ctx context.Context, i int) error { _, err := sh(ctx, nil, "sync"); return err },
		steps: func(i int) [][]string {
			return [][]string{{"sh", "-c", `tar -C "$1" -c . | sha256sum >/dev/null`, "sh", data}}
		}})
	w.goals = []goal{ratioGoal("kiln", "floor: tar c, sha256sum", 1.5), ratioGoal("kiln", "buildah", 0.25), memoryGoal(memLimit)}
	return w
}

// cycleWorkload: from + mount + unmount + rm, timed together.
func (b *bench) cycleWorkload(runs int, image string) *workload {
	w := &workload{name: "from+mount+unmount+rm (" + filepath.Base(image) + ")", what: "a working container's whole life without a process", runs: runs}
	for _, t := range b.tools() {
		v := &variant{name: t.name, kiln: t.name == "kiln"}
		if !v.kiln {
			v.vs = "kiln"
		}
		v.prep = func(ctx context.Context, i int) error { sh(ctx, nil, t.cmd("rm", "bench-cycle")...); return nil }
		v.steps = func(i int) [][]string {
			return [][]string{
				t.cmd("from", "--name", "bench-cycle", image), t.cmd("mount", "bench-cycle"),
				t.cmd("unmount", "bench-cycle"), t.cmd("rm", "bench-cycle"),
			}
		}
		w.variants = append(w.variants, v)
	}
	w.goals = []goal{memoryGoal(memLimit)}
	return w
}

// runWorkload: the per-run overhead of running true, per isolation.
func (b *bench) runWorkload(runs int) *workload {
	w := &workload{name: "run -- true", what: "per-run overhead of a process that does nothing", runs: runs}
	mk := func(name string, t tool, ctr string, args []string, vs string) *variant {
		v := &variant{name: name, kiln: t.name == "kiln", vs: vs}
		v.once = func(ctx context.Context) error {
			sh(ctx, nil, t.cmd("rm", ctr)...)
			_, err := sh(ctx, nil, t.cmd("from", "--name", ctr, "localhost/busybox")...)
			return err
		}
		v.steps = func(i int) [][]string {
			return [][]string{t.cmd(append(append([]string{"run"}, args...), ctr, "--", runOverheadCmd)...)}
		}
		v.done = func(ctx context.Context) error { _, err := sh(ctx, nil, t.cmd("rm", ctr)...); return err }
		return v
	}
	k, bd := b.tools()[0], b.tools()[1]
	w.variants = []*variant{
		mk("kiln --isolation oci", k, "bench-run-k", []string{"--isolation", "oci"}, ""),
		mk("kiln --isolation chroot", k, "bench-run-k", []string{"--isolation", "chroot"}, ""),
		mk("buildah (runc)", bd, "bench-run-b", []string{"--runtime", "runc"}, "kiln --isolation oci"),
		mk("buildah --isolation chroot", bd, "bench-run-b", []string{"--isolation", "chroot"}, "kiln --isolation chroot"),
	}
	// The two variants of one tool share a container: the first makes
	// it, the second removes it.
	w.variants[0].done, w.variants[1].once = nil, nil
	w.variants[2].done, w.variants[3].once = nil, nil
	w.goals = []goal{memoryGoal(memLimit)}
	return w
}

// imagesWorkload: list a store holding 1,000 images.
func (b *bench) imagesWorkload(runs int) *workload {
	w := &workload{name: "images (1,000 in the store)", what: "list 1,000 distinct images (one label each on busybox)", runs: runs}
	for _, t := range b.tools() {
		v := &variant{name: t.name, kiln: t.name == "kiln"}
		if !v.kiln {
			v.vs = "kiln"
		}
		v.once = func(ctx context.Context) error { return fillImages(ctx, t, imagesInStore) }
		v.steps = func(i int) [][]string { return [][]string{t.cmd("images")} }
		w.variants = append(w.variants, v)
	}
	w.goals = []goal{wallGoal("kiln", 50*time.Millisecond), memoryGoal(memLimit)}
	return w
}

// fillImages removes dangling images, then commits images bench/img-N
// until the store holds n images besides the bases; a later run of
// kilnbench finds them in place.
func fillImages(ctx context.Context, t tool, n int) error {
	// The build workloads leave unnamed step images in the same store;
	// without this, later runs would list thousands of images, not 1,000.
	prune := []string{"image", "prune", "--force"}
	if t.name == "buildah" {
		prune = []string{"rmi", "--prune"}
	}
	if _, err := sh(ctx, nil, t.cmd(prune...)...); err != nil {
		return err
	}
	have, err := sh(ctx, nil, t.cmd("images", "-q", "--filter", "reference=localhost/bench/img-*")...)
	if err != nil {
		return err
	}
	start := len(splitLines(have))
	if start >= n {
		return nil
	}
	sh(ctx, nil, t.cmd("rm", "bench-images")...)
	if _, err := sh(ctx, nil, t.cmd("from", "--name", "bench-images", "localhost/busybox")...); err != nil {
		return err
	}
	for i := start; i < n; i++ {
		if _, err := sh(ctx, nil, t.cmd("config", "--label", fmt.Sprintf("bench.n=%d", i), "bench-images")...); err != nil {
			return err
		}
		if _, err := sh(ctx, nil, t.cmd("commit", "bench-images", fmt.Sprintf("bench/img-%04d", i))...); err != nil {
			return err
		}
	}
	_, err = sh(ctx, nil, t.cmd("rm", "bench-images")...)
	return err
}

// makeBig commits localhost/bench/big (busybox and 1 GiB of random
// files) with tool t, once.
func (b *bench) makeBig(ctx context.Context, t tool) error {
	if _, err := sh(ctx, nil, t.cmd("inspect", "--type", "image", "localhost/bench/big")...); err == nil {
		return nil
	}
	if err := fillContainer(ctx, t, "bench-big", "localhost/busybox", b.path("data", "1g")); err != nil {
		return err
	}
	if _, err := sh(ctx, nil, t.cmd("commit", "--rm", "bench-big", "localhost/bench/big")...); err != nil {
		return err
	}
	return nil
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '\n' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// removeBlobInfoCache drops skopeo's memory of where blobs already are,
// so each push uploads instead of mounting from an earlier repository.
func removeBlobInfoCache() {
	for _, p := range []string{"/var/lib/containers/cache/blob-info-cache-v1.boltdb", "/var/lib/containers/cache/blob-info-cache-v1.sqlite"} {
		os.Remove(p)
	}
}
