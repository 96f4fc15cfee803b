package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}
