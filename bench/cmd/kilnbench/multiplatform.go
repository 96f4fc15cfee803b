package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// multiPlatformDockerfile is issue 15's workload: the multi-stage build for
// linux/amd64 and linux/arm64 on a base manifest list (BASE, in the bench's
// registry), with a stage that runs natively for both targets (FROM
// --platform=$BUILDPLATFORM, writing for $TARGETARCH) and target stages
// whose RUNs run arm64 busybox through qemu-user-static.
const multiPlatformDockerfile = `FROM --platform=$BUILDPLATFORM BASE AS gen
ARG TARGETARCH
RUN mkdir /out && for i in $(seq 1 200); do echo "$TARGETARCH $i" > /out/f$i; done
FROM BASE AS tools
RUN echo tool > /tool && chmod +x /tool
FROM BASE
COPY --from=gen /out /out
COPY --from=tools /tool /usr/local/bin/tool
RUN ls /out | wc -l > /count
`

// multiPlatformWorkload: the two-platform build from nothing, kiln (its
// platforms at once) beside buildah --jobs 2 (Buildah builds platforms
// one at a time unless --jobs says otherwise) and docker build. Debian 12's
// docker has no buildx, so its variant is one BuildKit build per platform,
// one after the other, without a list.
func (b *bench) multiPlatformWorkload(runs int) *workload {
	w := &workload{name: "build: two platforms", runs: runs,
		what: "the multi-stage build for linux/amd64 and linux/arm64 with a native cross stage (FROM --platform=$BUILDPLATFORM) and emulated arm64 RUNs, from nothing"}
	dir := b.path("ctx", "two-platforms")
	df := filepath.Join(dir, "Dockerfile")
	list := func(i int) string { return fmt.Sprintf("localhost/bench/mp:%d", i) }
	setup := func(ctx context.Context) error {
		base, err := b.pushArchBases(ctx)
		if err != nil {
			return err
		}
		return writeContext(dir, strings.ReplaceAll(multiPlatformDockerfile, "BASE", base), nil)
	}
	kv := &variant{name: "kiln", kiln: true, once: setup}
	kv.steps = func(i int) [][]string {
		return [][]string{b.kiln("build", "--isolation", "oci", "--format", "docker", "--tls-verify=false", "--platform", "linux/amd64,linux/arm64",
			"--manifest", list(i), "--no-cache", "-f", df, dir)}
	}
	kv.post = func(ctx context.Context, i int) error {
		if _, err := sh(ctx, nil, b.kiln("manifest", "rm", list(i))...); err != nil {
			return err
		}
		_, err := sh(ctx, nil, b.kiln("image", "prune", "--force")...)
		return err
	}
	bv := &variant{name: "buildah --jobs 2", vs: "kiln"}
	bv.steps = func(i int) [][]string {
		return [][]string{b.buildah("bud", "--runtime", "runc", "--format", "docker", "--tls-verify=false", "--jobs", "2", "--platform", "linux/amd64,linux/arm64",
			"--manifest", list(i), "--no-cache", "-f", df, dir)}
	}
	bv.post = func(ctx context.Context, i int) error {
		if _, err := sh(ctx, nil, b.buildah("manifest", "rm", list(i))...); err != nil {
			return err
		}
		_, err := sh(ctx, nil, b.buildah("rmi", "--prune")...)
		return err
	}
	w.variants = []*variant{kv, bv}
	w.goals = []goal{ratioGoal("kiln", "buildah --jobs 2", 1.0)}
	if b.dockerSock != "" {
		dv := &variant{name: "docker build, per platform", vs: "kiln", env: []string{"DOCKER_BUILDKIT=1"},
			note: "no buildx in Debian 12: two builds one after the other, no list; client only"}
		tag := func(arch string, i int) string { return fmt.Sprintf("localhost/bench/mp-%s:%d", arch, i) }
		dv.steps = func(i int) [][]string {
			var out [][]string
			for _, arch := range []string{"amd64", "arm64"} {
				out = append(out, b.docker("build", "-q", "--network", "host", "--platform", "linux/"+arch, "--no-cache", "-t", tag(arch, i), "-f", df, dir))
			}
			return out
		}
		dv.post = func(ctx context.Context, i int) error {
			for _, arch := range []string{"amd64", "arm64"} {
				if _, err := sh(ctx, nil, b.docker("rmi", tag(arch, i))...); err != nil {
					return err
				}
			}
			_, err := sh(ctx, nil, b.docker("builder", "prune", "-af")...)
			return err
		}
		w.variants = append(w.variants, dv)
		w.goals = append(w.goals, ratioGoal("kiln", "docker build, per platform", 1.0))
	}
	w.goals = append(w.goals, memoryGoal(memLimit))
	return w
}

// pushArchBases makes localhost/bench/busybox-arm64 (Debian's
// busybox-static for arm64, downloaded once) in kiln's store, after making
// sure qemu-user-static runs arm64 binaries, and pushes a manifest list of
// it and localhost/busybox to a fresh registry; it returns the list's name
// there. Every tool pulls the instance it needs from the list, as from
// any multi-platform base (Buildah 1.28 finds no local image of another
// platform for a build with --platform).
func (b *bench) pushArchBases(ctx context.Context) (string, error) {
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err != nil {
		if _, err := sh(ctx, nil, "update-binfmts", "--enable", "qemu-aarch64"); err != nil {
			return "", fmt.Errorf("no arm64 emulator: install qemu-user-static and binfmt-support: %w", err)
		}
	}
	if _, err := sh(ctx, nil, b.kiln("inspect", "--type", "image", "localhost/bench/busybox-arm64")...); err != nil {
		if err := b.makeArmBase(ctx); err != nil {
			return "", err
		}
	}
	if err := b.startRegistry(ctx); err != nil {
		return "", err
	}
	list := "localhost/bench/busybox-multi"
	sh(ctx, nil, b.kiln("manifest", "rm", list)...)
	for _, args := range [][]string{
		{"manifest", "create", list},
		{"manifest", "add", list, "localhost/busybox"},
		{"manifest", "add", list, "localhost/bench/busybox-arm64"},
	} {
		if _, err := sh(ctx, nil, b.kiln(args...)...); err != nil {
			return "", err
		}
	}
	name := b.registryAddr() + "/bench/busybox-multi:latest"
	if _, err := sh(ctx, nil, b.kiln("manifest", "push", "--quiet", "--all", "--tls-verify=false", list, "docker://"+name)...); err != nil {
		return "", err
	}
	return name, nil
}

// makeArmBase commits localhost/bench/busybox-arm64 in kiln's store.
func (b *bench) makeArmBase(ctx context.Context) error {
	bb, err := b.armBusybox(ctx)
	if err != nil {
		return err
	}
	return b.busyboxImage(ctx, bb, "localhost/bench/busybox-arm64", "from", "--arch", "arm64", "scratch")
}

// armBusybox downloads Debian's busybox-static for arm64 once, into the
// work directory, and returns the binary's path.
func (b *bench) armBusybox(ctx context.Context) (string, error) {
	dir := b.path("base", "busybox-arm64")
	bin := filepath.Join(dir, "root", "bin", "busybox")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", err
	}
	if arches, _ := sh(ctx, nil, "dpkg", "--print-foreign-architectures"); !strings.Contains(arches, "arm64") {
		if _, err := sh(ctx, nil, "dpkg", "--add-architecture", "arm64"); err != nil {
			return "", err
		}
	}
	if exec.CommandContext(ctx, "apt-cache", "show", "busybox-static:arm64").Run() != nil {
		if _, err := sh(ctx, nil, "apt-get", "update", "-qq"); err != nil {
			return "", err
		}
	}
	if _, err := sh(ctx, nil, "sh", "-c", `cd "$1" && apt-get download -qq busybox-static:arm64`, "sh", dir); err != nil {
		return "", err
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "busybox-static_*_arm64.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download busybox-static:arm64 wrote %v", debs)
	}
	if _, err := sh(ctx, nil, "dpkg-deb", "-x", debs[0], filepath.Join(dir, "root")); err != nil {
		return "", err
	}
	return bin, nil
}
