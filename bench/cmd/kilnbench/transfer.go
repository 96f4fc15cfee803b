package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/moby/sys/mountinfo"
)

// pullWorkload: pull the 1 GiB image from the local registry into an
// empty store (kiln pull against skopeo copy into containers-storage).
// Each pull starts from an empty store, so nothing of the image is there.
func (b *bench) pullWorkload(runs int) *workload {
	w := &workload{name: "pull 1 GiB", what: "pull a 1 GiB image (busybox + 256 × 4 MiB random files, gzip) from docker-registry on loopback into an empty store", runs: runs}
	src := func() string { return b.registryAddr() + "/bench/big:src" }
	kilnStore, csStore := b.path("pull", "kiln"), b.path("pull", "containers-storage")
	empty := func(dir string) func(ctx context.Context, i int) error {
		return func(ctx context.Context, i int) error {
			unmountUnder(dir)
			return os.RemoveAll(dir)
		}
	}
	kv := &variant{name: "kiln", kiln: true, prep: empty(kilnStore)}
	kv.done = func(ctx context.Context) error { return empty(kilnStore)(ctx, 0) }
	kv.once = func(ctx context.Context) error {
		if err := b.makeBig(ctx, b.tools()[0]); err != nil {
			return err
		}
		if err := b.startRegistry(ctx); err != nil {
			return err
		}
		_, err := sh(ctx, nil, b.kiln("push", "--quiet", "--tls-verify=false", "localhost/bench/big", "docker://"+src())...)
		return err
	}
	kv.steps = func(i int) [][]string {
		return [][]string{{b.kilnBin, "--root", filepath.Join(kilnStore, "root"), "--runroot", filepath.Join(kilnStore, "run"),
			"pull", "--quiet", "--tls-verify=false", "docker://" + src()}}
	}
	sv := &variant{name: "skopeo copy", vs: "kiln"}
	sv.done = func(ctx context.Context) error { return empty(csStore)(ctx, 0) }
	sv.prep = func(ctx context.Context, i int) error {
		removeBlobInfoCache()
		return empty(csStore)(ctx, i)
	}
	sv.steps = func(i int) [][]string {
		dst := fmt.Sprintf("containers-storage:[overlay@%s+%s]%s", filepath.Join(csStore, "root"), filepath.Join(csStore, "run"), src())
		return [][]string{{"skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://" + src(), dst}}
	}
	w.variants = []*variant{kv, sv}
	w.goals = []goal{ratioGoal("kiln", "skopeo copy", 1.0), memoryGoal(memLimit)}
	return w
}

// pushWorkload: push the 1 GiB image to an empty registry (restarted
// with fresh storage before every push, so nothing is already there).
func (b *bench) pushWorkload(runs int) *workload {
	w := &workload{name: "push 1 GiB", what: "push the 1 GiB image from the store to an empty docker-registry on loopback (compressing with gzip)", runs: runs}
	dst := func(i int) string { return fmt.Sprintf("docker://%s/bench/big:%d", b.registryAddr(), i) }
	fresh := func(ctx context.Context, i int) error { removeBlobInfoCache(); return b.startRegistry(ctx) }
	kv := &variant{name: "kiln", kiln: true, prep: fresh}
	kv.once = func(ctx context.Context) error { return b.makeBig(ctx, b.tools()[0]) }
	kv.steps = func(i int) [][]string {
		return [][]string{b.kiln("push", "--quiet", "--tls-verify=false", "localhost/bench/big", dst(i))}
	}
	sv := &variant{name: "skopeo copy", vs: "kiln", prep: fresh}
	sv.once = func(ctx context.Context) error { return b.makeBig(ctx, b.tools()[1]) }
	sv.steps = func(i int) [][]string {
		return [][]string{{"skopeo", "copy", "--quiet", "--dest-tls-verify=false", b.buildahStore("localhost/bench/big:latest"), dst(i)}}
	}
	w.variants = []*variant{kv, sv}
	w.goals = []goal{ratioGoal("kiln", "skopeo copy", 1.0), memoryGoal(memLimit)}
	return w
}

// daemonWorkload: push the 1 GiB image into dockerd (docker-daemon:).
func (b *bench) daemonWorkload(runs int) *workload {
	w := &workload{name: "push docker-daemon: 1 GiB", what: "push the 1 GiB image into kilnbench's dockerd", runs: runs}
	if b.dockerSock == "" {
		w.skip = "dockerd not running"
		return w
	}
	rmi := func(tag string) func(ctx context.Context, i int) error {
		return func(ctx context.Context, i int) error {
			_, err := sh(ctx, nil, b.docker("rmi", fmt.Sprintf("bench/big:%s-%d", tag, i))...)
			return err
		}
	}
	kv := &variant{name: "kiln", kiln: true, env: []string{"DOCKER_HOST=unix://" + b.dockerSock}, post: rmi("kiln")}
	kv.once = func(ctx context.Context) error { return b.makeBig(ctx, b.tools()[0]) }
	kv.steps = func(i int) [][]string {
		return [][]string{b.kiln("push", "--quiet", "localhost/bench/big", fmt.Sprintf("docker-daemon:bench/big:kiln-%d", i))}
	}
	bv := &variant{name: "buildah push", vs: "kiln", post: rmi("buildah")}
	bv.once = func(ctx context.Context) error {
		if err := b.ensureDockerSockTarget(); err != nil {
			return err
		}
		return b.makeBig(ctx, b.tools()[1])
	}
	bv.steps = func(i int) [][]string {
		return [][]string{b.buildahToDaemon("push", "--quiet", "localhost/bench/big", fmt.Sprintf("docker-daemon:bench/big:buildah-%d", i))}
	}
	w.variants = []*variant{kv, bv}
	w.goals = []goal{memoryGoal(memLimit)}
	return w
}

// unmountUnder unmounts every mount at or below dir, deepest first
// (containers-storage's overlay driver bind-mounts its own directory).
func unmountUnder(dir string) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return
	}
	for i := len(ms) - 1; i >= 0; i-- {
		syscall.Unmount(ms[i].Mountpoint, syscall.MNT_DETACH)
	}
}

// layeredPushWorkload: issue 12's push. The 1 GiB image is a base that
// skopeo pushed to the registry (gzip); each tool pulls it once, and
// before every push (untimed) commits a new 16 MiB layer of random data
// on it; the timed push goes to a new repository of that registry, which
// holds the base already: only the new layer and the config should
// travel. What each push adds to the registry's storage is reported.
func (b *bench) layeredPushWorkload(runs int) *workload {
	w := &workload{name: "push on a pulled 1 GiB base", what: "push an image of a new 16 MiB layer on the 1 GiB base (pulled from the registry) to a new repository of that registry", runs: runs}
	base := func() string { return b.registryAddr() + "/bench/base:src" }
	dst := func(tool string, i int) string {
		return fmt.Sprintf("docker://%s/bench/on-base-%s:%d", b.registryAddr(), tool, i)
	}
	setup := func(t tool) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			if err := b.pushedBase(ctx); err != nil {
				return err
			}
			_, err := sh(ctx, nil, t.cmd("pull", "--quiet", "--tls-verify=false", base())...)
			return err
		}
	}
	var before int64
	mk := func(t tool, kiln bool) *variant {
		v := &variant{name: t.name, kiln: kiln, once: setup(t)}
		if !kiln {
			v.name, v.vs = "skopeo copy", "kiln"
		}
		v.prep = func(ctx context.Context, i int) error {
			layer := b.path("data", fmt.Sprintf("16m-%s-%d", t.name, i))
			if err := makeData(layer, 1, 16<<20); err != nil {
				return err
			}
			if err := fillContainer(ctx, t, "bench-on-base", base(), layer); err != nil {
				return err
			}
			if _, err := sh(ctx, nil, t.cmd("commit", "--rm", "bench-on-base", "localhost/bench/on-base")...); err != nil {
				return err
			}
			before = dirBytes(b.registryDir)
			return nil
		}
		v.post = func(ctx context.Context, i int) error {
			v.note = fmt.Sprintf("%s stored by the registry per push", fmtMiB(dirBytes(b.registryDir)-before))
			return nil
		}
		return v
	}
	kv := mk(b.tools()[0], true)
	kv.steps = func(i int) [][]string {
		return [][]string{b.kiln("push", "--quiet", "--tls-verify=false", "localhost/bench/on-base", dst("kiln", i))}
	}
	sv := mk(b.tools()[1], false)
	sv.steps = func(i int) [][]string {
		return [][]string{{"skopeo", "copy", "--quiet", "--dest-tls-verify=false", b.buildahStore("localhost/bench/on-base:latest"), dst("skopeo", i)}}
	}
	w.variants = []*variant{kv, sv}
	w.goals = []goal{ratioGoal("kiln", "skopeo copy", 1.0), memoryGoal(memLimit)}
	return w
}

// pushedBase puts buildah's 1 GiB image into the registry with skopeo
// as bench/base:src, once per registry.
func (b *bench) pushedBase(ctx context.Context) error {
	if b.registry == nil {
		if err := b.startRegistry(ctx); err != nil {
			return err
		}
	}
	ref := "docker://" + b.registryAddr() + "/bench/base:src"
	if _, err := sh(ctx, nil, "skopeo", "inspect", "--tls-verify=false", ref); err == nil {
		return nil
	}
	if err := b.makeBig(ctx, b.tools()[1]); err != nil {
		return err
	}
	_, err := sh(ctx, nil, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", b.buildahStore("localhost/bench/big:latest"), ref)
	return err
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
