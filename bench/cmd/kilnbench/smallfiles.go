package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Issue 16's workloads: many small files. The 20,000-file COPY (cold, and
// rebuilt with one file changed) is a build case (builds.go) with the
// floor beside it; the pull of Debian plus the image that COPY makes, and
// the first run of a container of it, are below.

const smallFiles = 20000

// smallFilesFloor is the floor of a workload over the context in dir:
// its files read once into a tar and hashed.
func smallFilesFloor(dir string) *variant {
	return &variant{name: "floor: tar c, sha256sum", vs: "kiln",
		prep: func(ctx context.Context, i int) error { _, err := sh(ctx, nil, "sync"); return err },
		steps: func(i int) [][]string {
			return [][]string{{"sh", "-c", `tar -C "$1" -c files | sha256sum >/dev/null`, "sh", dir}}
		}}
}

// smallFilesGoals are issue 16's goals for a build of the 20,000 files.
func smallFilesGoals(cold bool, docker bool) []goal {
	gs := []goal{wallGoal("kiln", time.Second)}
	if cold {
		gs = append(gs, ratioGoal("kiln", "buildah --layers", 0.1))
		if docker {
			gs = append(gs, ratioGoal("kiln", "docker build (BuildKit)", 0.05))
		}
	}
	return gs
}

// smallFilesChanged rewrites one of the context's files before a rebuild.
func smallFilesChanged(dir string, i int) error {
	p := filepath.Join(dir, "files", "d07", "f07123.txt")
	return os.WriteFile(p, []byte(fmt.Sprintf("changed %d %d\n", i, time.Now().UnixNano())), 0o644)
}

// pullSmallFilesWorkload: pull Debian plus a layer of 20,000 small files
// from the registry into an empty store, and then run a container of it.
// kiln keeps the layers as blobs at the pull and makes their files at the
// first run; the peers unpack at the pull.
func (b *bench) pullSmallFilesWorkload(runs int) *workload {
	w := &workload{name: "pull Debian + 20,000 files", what: "pull an image of a debootstrap minbase Debian and a layer of 20,000 small files (gzip) from docker-registry on loopback into an empty store; \"kiln pull, from, run\" also starts a container of it (`run -- true`), which makes the layers' files", runs: runs}
	ref := func() string { return b.registryAddr() + "/bench/smallfiles:src" }
	kilnStore, csStore := b.path("pull-small", "kiln"), b.path("pull-small", "containers-storage")
	empty := func(dir string) func(ctx context.Context, i int) error {
		return func(ctx context.Context, i int) error {
			unmountUnder(dir)
			return os.RemoveAll(dir)
		}
	}
	k := func(args ...string) []string {
		return append([]string{b.kilnBin, "--root", filepath.Join(kilnStore, "root"), "--runroot", filepath.Join(kilnStore, "run")}, args...)
	}
	pull := func() []string { return k("pull", "--quiet", "--tls-verify=false", "docker://"+ref()) } // the registry's port is known once it runs
	kv := &variant{name: "kiln pull", kiln: true, prep: empty(kilnStore), done: func(ctx context.Context) error { return empty(kilnStore)(ctx, 0) }}
	kv.once = func(ctx context.Context) error {
		dir := b.path("ctx", "pull-small")
		if err := makeSmallFiles(filepath.Join(dir, "files"), smallFiles); err != nil {
			return err
		}
		if err := writeContext(dir, "FROM localhost/debian\nCOPY files/ /data/\n", nil); err != nil {
			return err
		}
		if _, err := sh(ctx, nil, b.kiln("build", "-q", "--format", "docker", "-t", "localhost/bench/smallfiles", dir)...); err != nil {
			return err
		}
		if err := b.startRegistry(ctx); err != nil {
			return err
		}
		_, err := sh(ctx, nil, b.kiln("push", "--quiet", "--tls-verify=false", "localhost/bench/smallfiles", "docker://"+ref())...)
		return err
	}
	kv.steps = func(i int) [][]string { return [][]string{pull()} }
	kr := &variant{name: "kiln pull, from, run", kiln: true, prep: empty(kilnStore), done: func(ctx context.Context) error { return empty(kilnStore)(ctx, 0) }}
	kr.steps = func(i int) [][]string {
		return [][]string{pull(), k("from", "--name", "bench-small", ref()), k("run", "--isolation", "oci", "bench-small", "--", "true")}
	}
	sv := &variant{name: "skopeo copy", vs: "kiln pull", done: func(ctx context.Context) error { return empty(csStore)(ctx, 0) }}
	sv.prep = func(ctx context.Context, i int) error {
		removeBlobInfoCache()
		return empty(csStore)(ctx, i)
	}
	sv.steps = func(i int) [][]string {
		dst := fmt.Sprintf("containers-storage:[overlay@%s+%s]%s", filepath.Join(csStore, "root"), filepath.Join(csStore, "run"), ref())
		return [][]string{{"skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://" + ref(), dst}}
	}
	// buildah pulls into an empty store of its own, as kiln and skopeo
	// do: its usual store has localhost/debian, whose layer it would not
	// pull again.
	buildahStore := b.path("pull-small", "buildah")
	bv := &variant{name: "buildah pull", vs: "kiln pull", done: func(ctx context.Context) error { return empty(buildahStore)(ctx, 0) }}
	bv.prep = func(ctx context.Context, i int) error {
		removeBlobInfoCache()
		return empty(buildahStore)(ctx, i)
	}
	bv.steps = func(i int) [][]string {
		return [][]string{{"buildah", "--root", filepath.Join(buildahStore, "root"), "--runroot", filepath.Join(buildahStore, "run"), "--storage-driver", "overlay",
			"pull", "--quiet", "--tls-verify=false", "docker://" + ref()}}
	}
	w.variants = []*variant{kv, kr, sv, bv}
	if b.dockerSock != "" {
		dv := &variant{name: "docker pull", vs: "kiln pull", note: "client only: the daemon's memory is not counted"}
		dv.prep = func(ctx context.Context, i int) error {
			sh(ctx, nil, b.docker("rmi", "-f", ref())...)
			sh(ctx, nil, b.docker("image", "prune", "-af")...)
			return nil
		}
		dv.steps = func(i int) [][]string { return [][]string{b.docker("pull", "-q", ref())} }
		dv.done = func(ctx context.Context) error {
			// The prune took the bases the build workloads start from.
			sh(ctx, nil, b.docker("rmi", "-f", ref())...)
			return b.reloadDockerBases(ctx)
		}
		w.variants = append(w.variants, dv)
	}
	w.goals = []goal{fastestPeerGoal("kiln pull", 0.3), fastestPeerGoal("kiln pull, from, run", 1.0), memoryGoal(memLimit)}
	return w
}

// fastestPeerGoal checks kiln/fastest peer ≤ limit, over the variants
// that are not kiln's.
func fastestPeerGoal(kilnName string, limit float64) goal {
	return goal{
		desc: fmt.Sprintf("%s ≤ %.2g× the fastest peer", kilnName, limit),
		check: func(w *workload) (bool, string, bool) {
			var fastest *variant
			for _, v := range w.variants {
				if v.kiln || len(v.samples) == 0 {
					continue
				}
				if fastest == nil || summarize(v.samples).median < summarize(fastest.samples).median {
					fastest = v
				}
			}
			r := ratio(w.variant(kilnName), fastest)
			if r == 0 {
				return false, "not measured", false
			}
			return r <= limit, fmt.Sprintf("%.2f× (%s)", r, fastest.name), true
		},
	}
}

// reloadDockerBases loads the shared bases again into dockerd from the
// archives shareBase wrote.
func (b *bench) reloadDockerBases(ctx context.Context) error {
	for _, name := range []string{"localhost/busybox", "localhost/debian"} {
		archive := b.path("base", filepath.Base(name)+".tar")
		if _, err := os.Stat(archive); err != nil {
			continue
		}
		if _, err := sh(ctx, nil, "skopeo", "copy", "--quiet", "--dest-daemon-host", "unix://"+b.dockerSock,
			"oci-archive:"+archive+":latest", "docker-daemon:"+name+":latest"); err != nil {
			return err
		}
	}
	return nil
}
