package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	cfs "github.com/containerd/continuity/fs"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/run"
)

// ExitError carries the exit status a build error gives kiln: a RUN
// step's process's, or a git clone's.
type ExitError struct {
	Code int
	// Err, when set, is what failed; its message is the error's.
	Err error
}

func (e *ExitError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

func (e *ExitError) Unwrap() error { return e.Err }

// runStep runs a RUN instruction in the working container.
func (r *stageRun) runStep(ctx context.Context, c *instructions.RunCommand) error {
	used := map[string]struct{}{}
	if err := c.Expand(r.expander(used)); err != nil {
		return err
	}
	argv, script, err := r.runArgs(c)
	if err != nil {
		return err
	}
	env := r.runEnv()
	network, err := r.runNetwork(c)
	if err != nil {
		return err
	}
	mounts := instructions.GetMounts(c)
	parts := append([]string{"argv:" + strings.Join(argv, "\x01"), "script:" + script, "net:" + network.String()}, argsParts(env)...)
	mparts, err := r.mountKeyParts(ctx, mounts)
	if err != nil {
		return err
	}
	parts = append(parts, mparts...)
	var extras [][]string
	if loc := c.Location(); len(loc) > 0 {
		extras = r.b.df.mountExtras[loc[0].Start.Line]
	}
	for _, e := range extras {
		parts = append(parts, "mount-extra:"+strings.Join(e, ","))
	}
	// The --volume mounts: a RUN that sees other directories is another
	// step (Buildah runs it again, having no cache by default).
	for _, m := range r.b.o.Run.Mounts {
		parts = append(parts, "volume:"+m.Source+"\x01"+m.Destination+"\x01"+strings.Join(m.Options, ","))
	}
	// So do its capabilities.
	if len(r.b.o.Run.CapAdd)+len(r.b.o.Run.CapDrop) > 0 {
		parts = append(parts, "cap-add:"+strings.Join(r.b.o.Run.CapAdd, ","), "cap-drop:"+strings.Join(r.b.o.Run.CapDrop, ","))
	}
	return r.do(ctx, "RUN "+strings.Join(c.CmdLine, " "), parts, true, func(ctx context.Context, ctr *container.Container) error {
		return r.execRun(ctx, ctr, runSpec{argv: argv, script: script, env: env, network: network, mounts: mounts, extras: extras})
	})
}

// heredocPath is where a RUN heredoc with a "#!" line is mounted and
// executed from, as BuildKit does; /dev is a tmpfs, so nothing of it
// reaches the layer.
const heredocPath = "/dev/pipes/kiln-heredoc"

// runArgs is the process's argv: exec form as written, shell form
// through SHELL; a lone heredoc is the script itself, run by the shell,
// or, when it starts with "#!", as an executable file (script).
func (r *stageRun) runArgs(c *instructions.RunCommand) (argv []string, script string, err error) {
	if !c.PrependShell {
		if len(c.CmdLine) == 0 {
			return nil, "", fmt.Errorf("RUN needs a command")
		}
		return append([]string{}, c.CmdLine...), "", nil
	}
	if len(c.CmdLine) == 0 && len(c.Files) == 0 {
		// An empty RUN runs the shell with nothing to run, as Buildah does:
		// "/bin/sh: -c requires an argument", exit status 2.
		return r.shell(), "", nil
	}
	script = strings.Join(c.CmdLine, " ")
	if len(c.Files) > 0 {
		if len(c.Files) == 1 && isHeredocMarker(script) {
			script = c.Files[0].Data
			if strings.HasPrefix(script, "#!") {
				return []string{heredocPath}, script, nil
			}
		} else {
			var b strings.Builder
			b.WriteString(script)
			for _, f := range c.Files {
				b.WriteString("\n" + f.Data + f.Name)
			}
			script = b.String()
		}
	}
	return append(r.shell(), script), "", nil
}

// isHeredocMarker reports whether s is only "<<EOF" (with - or quotes).
func isHeredocMarker(s string) bool {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "<<") {
		return false
	}
	return !strings.ContainsAny(strings.TrimLeft(s[2:], "-"), " \t|;&")
}

// runEnv is the process's environment: the image's, then the ARGs in
// scope that ENV does not override, then proxy build args.
func (r *stageRun) runEnv() []string {
	env := append([]string{}, r.config().Config.Env...)
	has := func(k string) bool {
		return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
	}
	for _, k := range r.args.keys {
		if !has(k) {
			env = append(env, k+"="+r.args.values[k])
		}
	}
	for _, k := range proxyArgs {
		if v, ok := r.b.o.Args[k]; ok && !has(k) {
			env = append(env, k+"="+v)
		}
	}
	for _, kv := range r.b.o.Run.HostProxy {
		if k, _, _ := strings.Cut(kv, "="); !has(k) {
			env = append(env, kv)
		}
	}
	return env
}

// argsParts are the cache-key parts of a RUN's environment; proxy args
// are left out, as Docker does.
func argsParts(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(proxyArgs, k) {
			out = append(out, "env:"+kv)
		}
	}
	sort.Strings(out)
	return out
}

func (r *stageRun) runNetwork(c *instructions.RunCommand) (run.Network, error) {
	switch instructions.GetNetwork(c) {
	case instructions.NetworkNone:
		return run.NetworkNone, nil
	case instructions.NetworkHost:
		return run.NetworkHost, nil
	}
	return r.b.o.Run.Network, nil
}

// runSpec is one RUN's process.
type runSpec struct {
	argv, env []string
	script    string // mounted at heredocPath when set
	network   run.Network
	mounts    []*instructions.Mount
	extras    [][]string // Buildah's options of each mount
}

// execRun mounts the container and runs the process in it.
func (r *stageRun) execRun(ctx context.Context, ctr *container.Container, rs runSpec) error {
	root, err := ctr.Mount(ctx)
	if err != nil {
		return err
	}
	defer ctr.Unmount(context.WithoutCancel(ctx), false)
	rm, err := r.prepareMounts(ctx, rs.mounts, rs.extras)
	defer rm.release(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	if rs.script != "" {
		if err := r.scriptMount(rm, rs.script); err != nil {
			return err
		}
	}
	cfg := r.config().Config
	if err := makeVolumeDirs(root, cfg.Volumes); err != nil {
		return err
	}
	ro := run.Options{
		ContainerID: ctr.ID(), Rootfs: root, RunDir: ctr.RunDir(),
		Args: rs.argv, Env: append(rs.env, rm.env...), User: cfg.User, WorkingDir: cfg.WorkingDir,
		Network: rs.network, Mounts: append(append(rm.specs, r.b.o.Run.Mounts...), rm.late...), KeepMountTargets: rm.targets(),
		CapAdd: r.b.o.Run.CapAdd, CapDrop: r.b.o.Run.CapDrop, Security: r.b.o.Run.Security,
		Settings: r.b.o.Run.Settings, Stdin: r.b.o.Run.Stdin, Stdout: r.b.out, Stderr: r.b.out, Isolation: r.b.o.Run.Isolation, Runtime: r.b.o.Run.Runtime,
		Logger: r.b.o.Logger, Architecture: r.config().Architecture, RuntimeLog: r.b.o.Run.RuntimeLog,
		// Buildah's RUN has it; Docker's lacks it, which changes nothing
		// but /proc's Groups line (the primary group grants the same).
		PrimaryGroupInGroups: true,
	}
	if err := os.MkdirAll(ro.RunDir, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(ro.RunDir)
	code, err := run.Run(ctx, ro)
	switch {
	case errors.Is(err, run.ErrNotFound):
		return errors.Join(err, &ExitError{Code: 127})
	case errors.Is(err, run.ErrNotExecutable):
		return errors.Join(err, &ExitError{Code: 126})
	case err != nil:
		return fmt.Errorf("while running runtime: %w", err)
	case code != 0:
		return fmt.Errorf("while running runtime: %w", &ExitError{Code: code})
	}
	return nil
}

// makeVolumeDirs creates the VOLUME directories a RUN finds missing
// (following the image's symlinks inside root), as the anonymous volumes
// of Buildah and Docker's classic builder make them: a RUN may write
// there (its writes stay, as with BuildKit, which makes no volumes).
func makeVolumeDirs(root string, vols map[string]struct{}) error {
	for _, v := range image.SortedKeys(vols) {
		p, err := cfs.RootPath(root, v)
		if err != nil {
			return fmt.Errorf("VOLUME %s: %w", v, err)
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("VOLUME %s: %w", v, err)
		}
	}
	return nil
}
