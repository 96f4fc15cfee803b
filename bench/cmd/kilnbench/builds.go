package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// buildCase is one Dockerfile workload.
type buildCase struct {
	name, what string
	files      func(dir string) error // writes the context (with its Dockerfile)
	cold       bool                   // every run builds from nothing (--no-cache)
	prep       func(dir string, i int) error
	parent     string // a Dockerfile built once as localhost/bench/onbuild-parent
	// floor adds the floor over the context's files beside the builders;
	// goals are the case's own (smallfiles.go).
	floor bool
	goals func(docker bool) []goal
}

// builder is one way of building: kiln or a peer, with its flags.
type builder struct {
	name string
	kiln bool
	vs   string
	note string
	env  []string
	// build returns the command building dir into tag.
	build func(dir, tag string, noCache bool) []string
	rmi   func(tag string) []string
	prune []string // run after a cold build to drop cache it kept
}

func (b *bench) builders(cold bool) []builder {
	kiln := func(extra ...string) func(string, string, bool) []string {
		return func(dir, tag string, noCache bool) []string {
			// docker format as for buildah: OCI configs have no ONBUILD.
			args := append([]string{"build", "--isolation", "oci", "--format", "docker", "-t", tag, "-f", filepath.Join(dir, "Dockerfile")}, extra...)
			if noCache {
				args = append(args, "--no-cache")
			}
			return b.kiln(append(args, dir)...)
		}
	}
	buildah := func(extra ...string) func(string, string, bool) []string {
		return func(dir, tag string, noCache bool) []string {
			args := append([]string{"bud", "--runtime", "runc", "--format", "docker", "-t", tag, "-f", filepath.Join(dir, "Dockerfile")}, extra...)
			if noCache {
				args = append(args, "--no-cache")
			}
			return b.buildah(append(args, dir)...)
		}
	}
	docker := func(dir, tag string, noCache bool) []string {
		args := []string{"build", "-q", "--network", "host", "-t", tag, "-f", filepath.Join(dir, "Dockerfile")}
		if noCache {
			args = append(args, "--no-cache")
		}
		return b.docker(append(args, dir)...)
	}
	kilnRmi := func(tag string) []string { return b.kiln("rmi", tag) }
	buildahRmi := func(tag string) []string { return b.buildah("rmi", tag) }
	out := []builder{
		{name: "kiln", kiln: true, build: kiln(), rmi: kilnRmi},
		{name: "buildah --layers", vs: "kiln", build: buildah("--layers"), rmi: buildahRmi, prune: b.buildah("rmi", "--prune")},
	}
	if cold {
		out = append(out,
			builder{name: "kiln --layers=false", kiln: true, build: kiln("--layers=false"), rmi: kilnRmi},
			builder{name: "buildah", vs: "kiln --layers=false", build: buildah("--layers=false"), rmi: buildahRmi, prune: b.buildah("rmi", "--prune")})
	}
	if b.dockerSock != "" {
		out = append(out, builder{name: "docker build (BuildKit)", vs: "kiln", note: "client only: the daemon's memory is not counted",
			env: []string{"DOCKER_BUILDKIT=1"}, build: docker, rmi: func(tag string) []string { return b.docker("rmi", tag) },
			prune: b.docker("builder", "prune", "-af")})
	}
	return out
}

// buildWorkload turns a buildCase into a workload, or a skipped one when
// kiln build is not there.
func (b *bench) buildWorkload(bc buildCase, runs int, available bool) *workload {
	w := &workload{name: "build: " + bc.name, what: bc.what, runs: runs}
	if !available {
		w.skip = "kiln build not available"
		return w
	}
	dir := b.path("ctx", slug(bc.name))
	for _, bl := range b.builders(bc.cold) {
		v := &variant{name: bl.name, kiln: bl.kiln, vs: bl.vs, note: bl.note, env: bl.env}
		tag := func(i int) string {
			if bc.cold {
				return fmt.Sprintf("localhost/bench/build:%d", i)
			}
			return "localhost/bench/build:warm"
		}
		v.once = func(ctx context.Context) error {
			if err := bc.files(dir); err != nil {
				return err
			}
			if bc.parent != "" {
				if err := b.buildParent(ctx, bl, bc.parent); err != nil {
					return err
				}
			}
			if bc.cold {
				return nil
			}
			_, err := sh(ctx, bl.env, bl.build(dir, tag(0), false)...) // the build the timed ones rebuild
			return err
		}
		if bc.prep != nil {
			v.prep = func(ctx context.Context, i int) error { return bc.prep(dir, i) }
		}
		v.steps = func(i int) [][]string { return [][]string{bl.build(dir, tag(i), bc.cold)} }
		if bc.cold {
			v.post = func(ctx context.Context, i int) error {
				_, err := sh(ctx, bl.env, bl.rmi(tag(i))...)
				if bl.prune != nil {
					sh(ctx, bl.env, bl.prune...)
				}
				return err
			}
		} else {
			v.done = func(ctx context.Context) error { _, err := sh(ctx, bl.env, bl.rmi(tag(0))...); return err }
		}
		w.variants = append(w.variants, v)
	}
	if bc.floor {
		w.variants = append(w.variants, smallFilesFloor(dir))
	}
	w.goals = []goal{ratioGoal("kiln", "buildah --layers", 0.5)}
	if bc.cold {
		w.goals = append(w.goals, ratioGoal("kiln --layers=false", "buildah", 0.5))
	}
	if b.dockerSock != "" {
		w.goals = append(w.goals, ratioGoal("kiln", "docker build (BuildKit)", 1.0))
	}
	if bc.name == "no-change rebuild" {
		w.goals = append(w.goals, wallGoal("kiln", 300*time.Millisecond))
	}
	if bc.goals != nil {
		w.goals = append(w.goals, bc.goals(b.dockerSock != "")...)
	}
	w.goals = append(w.goals, memoryGoal(memLimit))
	return w
}

func (b *bench) buildParent(ctx context.Context, bl builder, dockerfile string) error {
	dir := b.path("ctx", "onbuild-parent")
	if err := writeContext(dir, dockerfile, nil); err != nil {
		return err
	}
	_, err := sh(ctx, bl.env, bl.build(dir, "localhost/bench/onbuild-parent", false)...)
	return err
}

// writeContext writes a Dockerfile and files into dir.
func writeContext(dir, dockerfile string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// runSteps is n small RUN steps numbered from first.
func runSteps(first, n int) string {
	var sb strings.Builder
	for i := first; i < first+n; i++ {
		fmt.Fprintf(&sb, "RUN echo step %d > /step%d\n", i, i)
	}
	return sb.String()
}

func (b *bench) buildCases() []buildCase {
	twenty := "FROM localhost/busybox\n" + runSteps(1, 20)
	oneChanged := "FROM localhost/busybox\n" + runSteps(1, 10) + "COPY changing.txt /changing.txt\n" + runSteps(11, 10)
	multi := `FROM localhost/busybox AS gen
RUN mkdir /out && for i in $(seq 1 200); do echo $i > /out/f$i; done
FROM localhost/busybox AS tools
RUN echo tool > /tool && chmod +x /tool
FROM localhost/busybox
COPY --from=gen /out /out
COPY --from=tools /tool /usr/local/bin/tool
RUN ls /out | wc -l > /count
`
	return []buildCase{
		{name: "COPY 20,000 files", what: "one COPY of a context of 20,000 small files (100–2,000 bytes)", cold: true,
			files: func(dir string) error {
				if err := makeSmallFiles(filepath.Join(dir, "files"), smallFiles); err != nil {
					return err
				}
				return writeContext(dir, "FROM localhost/busybox\nCOPY files/ /data/\n", nil)
			},
			floor: true, goals: func(docker bool) []goal { return smallFilesGoals(true, docker) }},
		{name: "COPY 20,000 files, 149 MB", what: "one COPY of a context of 20,000 files of 100–15,000 bytes (149 MB), as in issue 16's first table", cold: true,
			files: func(dir string) error {
				if err := makeFiles(filepath.Join(dir, "files"), smallFiles, 15000); err != nil {
					return err
				}
				return writeContext(dir, "FROM localhost/busybox\nCOPY files/ /data/\n", nil)
			},
			floor: true, goals: func(docker bool) []goal { return smallFilesGoals(true, docker) }},
		{name: "COPY 20,000 files, 149 MB, one changed", what: "the 149 MB COPY again after one of its 20,000 files changed",
			files: func(dir string) error {
				if err := makeFiles(filepath.Join(dir, "files"), smallFiles, 15000); err != nil {
					return err
				}
				return writeContext(dir, "FROM localhost/busybox\nCOPY files/ /data/\n", nil)
			},
			prep:  smallFilesChanged,
			floor: true, goals: func(docker bool) []goal { return smallFilesGoals(false, docker) }},
		{name: "COPY 20,000 files, one changed", what: "the same COPY again after one of the 20,000 files changed",
			files: func(dir string) error {
				if err := makeSmallFiles(filepath.Join(dir, "files"), smallFiles); err != nil {
					return err
				}
				return writeContext(dir, "FROM localhost/busybox\nCOPY files/ /data/\n", nil)
			},
			prep:  smallFilesChanged,
			floor: true, goals: func(docker bool) []goal { return smallFilesGoals(false, docker) }},
		{name: "twenty RUN steps", what: "twenty small RUN steps, from nothing", cold: true,
			files: func(dir string) error { return writeContext(dir, twenty, nil) }},
		{name: "multi-stage", what: "three stages, two COPY --from and a RUN", cold: true,
			files: func(dir string) error { return writeContext(dir, multi, nil) }},
		{name: "ONBUILD child", what: "a child that is only FROM a parent with ONBUILD COPY and RUN (parent built once)", cold: true,
			parent: "FROM localhost/busybox\nONBUILD COPY . /app\nONBUILD RUN ls /app > /app.list\n",
			files: func(dir string) error {
				return writeContext(dir, "FROM localhost/bench/onbuild-parent\n", map[string]string{"main.sh": "echo hi\n", "lib/a.sh": "a\n"})
			}},
		{name: "no-change rebuild", what: "the twenty-step build again, nothing changed",
			files: func(dir string) error { return writeContext(dir, twenty, nil) }},
		{name: "one-file-changed rebuild", what: "twenty steps with a COPY in the middle whose file changed",
			files: func(dir string) error {
				return writeContext(dir, oneChanged, map[string]string{"changing.txt": "initial\n"})
			},
			prep: func(dir string, i int) error {
				return os.WriteFile(filepath.Join(dir, "changing.txt"), []byte(fmt.Sprintf("change %d %d\n", i, time.Now().UnixNano())), 0o644)
			}},
		{name: "1 GiB RUN", what: "one RUN writing 1 GiB (dd from /dev/zero), then committed", cold: true,
			files: func(dir string) error {
				return writeContext(dir, "FROM localhost/busybox\nRUN dd if=/dev/zero of=/big bs=1M count=1024 2>/dev/null\n", nil)
			}},
	}
}

// slug makes a directory name of a workload name: buildah reads a comma
// in -f's path as a list separator.
func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s)
}
