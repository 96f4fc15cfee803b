package dockerfile

import (
	"context"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/image"
)

// configFunc changes the image config of the working container.
type configFunc func(c *container.Container) error

// configStep runs a step that changes only the config: no layer.
func (r *stageRun) configStep(ctx context.Context, text string, parts []string, apply configFunc) error {
	return r.do(ctx, text, parts, false, func(_ context.Context, c *container.Container) error {
		if err := apply(c); err != nil {
			return err
		}
		c.State.Config = c.State.Config.Clone() // drop aliasing with cached configs
		return nil
	})
}

// configInstruction expands a config-only instruction and applies it.
func (r *stageRun) configInstruction(ctx context.Context, cmd instructions.Command) error {
	used := map[string]struct{}{}
	if e, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if err := e.Expand(r.expander(used)); err != nil {
			return err
		}
	}
	if wd, ok := cmd.(*instructions.WorkdirCommand); ok {
		return r.workdirStep(ctx, wd, used)
	}
	apply, text, err := r.configChange(cmd, used)
	if err != nil {
		return err
	}
	return r.configStep(ctx, text, r.usedArgs(used), apply)
}

// workdirStep sets the working directory and creates it, owned by the
// current USER, as BuildKit does; a layer only when it was missing.
func (r *stageRun) workdirStep(ctx context.Context, c *instructions.WorkdirCommand, used map[string]struct{}) error {
	wd := c.Path
	if !path.IsAbs(wd) {
		wd = path.Join("/", r.config().Config.WorkingDir, wd)
	}
	wd = path.Clean(wd)
	user := r.config().Config.User
	return r.do(ctx, "WORKDIR "+c.Path, append(r.usedArgs(used), "dir:"+wd, "user:"+user), true, func(ctx context.Context, ctr *container.Container) error {
		ctr.State.Config = ctr.State.Config.Clone()
		ctr.State.Config.Config.WorkingDir = wd
		created, err := ctr.MkdirAll(ctx, wd, user)
		if err != nil {
			return err
		}
		if !created {
			return errNoChange
		}
		return nil
	})
}

// configChange maps an instruction to its change and its history text.
func (r *stageRun) configChange(cmd instructions.Command, used map[string]struct{}) (configFunc, string, error) {
	text := cmd.(fmt.Stringer).String()
	cc := func(f func(cc *image.ContainerConfig)) configFunc {
		return func(c *container.Container) error { f(&c.State.Config.Config); return nil }
	}
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		return cc(func(cc *image.ContainerConfig) {
			for _, kv := range c.Env {
				cc.Env = setEnv(cc.Env, kv.Key, kv.Value)
			}
		}), "ENV " + kvText(c.Env), nil
	case *instructions.LabelCommand:
		return cc(func(cc *image.ContainerConfig) {
			if cc.Labels == nil {
				cc.Labels = map[string]string{}
			}
			for _, kv := range c.Labels {
				cc.Labels[kv.Key] = kv.Value
			}
		}), "LABEL " + kvText(c.Labels), nil
	case *instructions.MaintainerCommand:
		return func(ctr *container.Container) error { ctr.State.Config.Author = c.Maintainer; return nil }, text, nil
	case *instructions.ExposeCommand:
		return r.expose(c, used)
	case *instructions.VolumeCommand:
		return cc(func(cc *image.ContainerConfig) {
			if cc.Volumes == nil {
				cc.Volumes = map[string]struct{}{}
			}
			for _, v := range c.Volumes {
				cc.Volumes[v] = struct{}{}
			}
		}), "VOLUME " + fmt.Sprint(c.Volumes), nil
	case *instructions.UserCommand:
		return cc(func(cc *image.ContainerConfig) { cc.User = c.User }), "USER " + c.User, nil
	case *instructions.StopSignalCommand:
		return cc(func(cc *image.ContainerConfig) { cc.StopSignal = c.Signal }), "STOPSIGNAL " + c.Signal, nil
	case *instructions.OnbuildCommand:
		return cc(func(cc *image.ContainerConfig) { cc.OnBuild = append(cc.OnBuild, c.Expression) }), text, nil
	case *instructions.HealthCheckCommand:
		return cc(func(cc *image.ContainerConfig) { cc.Healthcheck = health(c) }), text, nil
	}
	return r.commandChange(cmd, text)
}

// commandChange handles CMD, ENTRYPOINT and SHELL, which take the
// current shell for their shell form.
func (r *stageRun) commandChange(cmd instructions.Command, text string) (configFunc, string, error) {
	switch c := cmd.(type) {
	case *instructions.CmdCommand:
		args := r.withShell(c.ShellDependantCmdLine)
		r.cmdSet = true
		return func(ctr *container.Container) error {
			ctr.State.Config.Config.Cmd = args
			return nil
		}, text, nil
	case *instructions.EntrypointCommand:
		args := r.withShell(c.ShellDependantCmdLine)
		inheritedCmd := !r.cmdSet
		return func(ctr *container.Container) error {
			cc := &ctr.State.Config.Config
			cc.Entrypoint = args
			if inheritedCmd {
				cc.Cmd = nil // Docker: ENTRYPOINT resets a CMD inherited from the base
			}
			return nil
		}, text, nil
	case *instructions.ShellCommand:
		return func(ctr *container.Container) error {
			ctr.State.Config.Config.Shell = append([]string{}, c.Shell...)
			return nil
		}, text, nil
	}
	return nil, "", fmt.Errorf("%w: %s: unsupported instruction %s", ErrSyntax, r.b.df.name, cmd.Name())
}

// withShell gives a command line its shell when written in shell form.
func (r *stageRun) withShell(cl instructions.ShellDependantCmdLine) []string {
	if !cl.PrependShell {
		return append([]string{}, cl.CmdLine...)
	}
	return append(r.shell(), strings.Join(cl.CmdLine, " "))
}

// shell is the current SHELL, /bin/sh -c by default.
func (r *stageRun) shell() []string {
	if sh := r.config().Config.Shell; len(sh) > 0 {
		return append([]string{}, sh...)
	}
	return []string{"/bin/sh", "-c"}
}

func (r *stageRun) expose(c *instructions.ExposeCommand, used map[string]struct{}) (configFunc, string, error) {
	exp := r.expander(used)
	var ports []string
	for _, p := range c.Ports {
		v, err := exp(p)
		if err != nil {
			return nil, "", err
		}
		for _, f := range strings.Fields(v) {
			if !strings.Contains(f, "/") {
				f += "/tcp"
			}
			ports = append(ports, f)
		}
	}
	return func(ctr *container.Container) error {
		cc := &ctr.State.Config.Config
		if cc.ExposedPorts == nil {
			cc.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range ports {
			cc.ExposedPorts[p] = struct{}{}
		}
		return nil
	}, "EXPOSE " + strings.Join(ports, " "), nil
}

func health(c *instructions.HealthCheckCommand) *image.HealthConfig {
	h := c.Health
	if h == nil {
		return nil
	}
	return &image.HealthConfig{
		Test: append([]string{}, h.Test...), Interval: h.Interval, Timeout: h.Timeout,
		StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries,
	}
}

func setEnv(env []string, k, v string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name != k {
			out = append(out, kv)
		}
	}
	return append(out, k+"="+v)
}

func kvText(kvs instructions.KeyValuePairs) string {
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		parts = append(parts, kv.Key+"="+kv.Value)
	}
	return strings.Join(parts, " ")
}

// finalStep is the config step the build's options add to the target
// stage: --label, --env, --unsetenv, --os-version, --os-feature, and the
// platform --platform names (--annotation goes to the final manifest,
// see finish).
type finalStep struct {
	text  string
	parts []string
	apply configFunc
}

func (r *stageRun) finalConfig() *finalStep {
	co := r.b.o.Commit
	if !r.final {
		return nil
	}
	var text, parts []string
	if len(co.Labels) > 0 {
		text = append(text, "LABEL "+strings.Join(co.Labels, " "))
		parts = append(parts, co.Labels...)
	}
	if len(co.Env) > 0 {
		text = append(text, "ENV "+strings.Join(co.Env, " "))
		parts = append(parts, prefixed("env:", co.Env)...)
	}
	if len(co.Unsetenv) > 0 {
		text = append(text, "UNSETENV "+strings.Join(co.Unsetenv, " "))
		parts = append(parts, prefixed("unsetenv:", co.Unsetenv)...)
	}
	if co.OSVersion != "" || len(co.OSFeatures) > 0 {
		parts = append(parts, "os.version:"+co.OSVersion)
		parts = append(parts, prefixed("os.feature:", co.OSFeatures)...)
	}
	want, setPlatform := r.imagePlatform()
	if setPlatform {
		parts = append(parts, "platform:"+platformText(want))
	}
	if len(parts) == 0 {
		return nil
	}
	if len(text) == 0 {
		text = append(text, "PLATFORM "+platformText(want))
	}
	return &finalStep{text: strings.Join(text, " "), parts: parts, apply: func(c *container.Container) error {
		cfg := c.State.Config
		cc := &cfg.Config
		if cc.Labels == nil && len(co.Labels) > 0 {
			cc.Labels = map[string]string{}
		}
		for _, l := range co.Labels {
			k, v, _ := strings.Cut(l, "=")
			cc.Labels[k] = v
		}
		for _, e := range co.Env {
			k, v, _ := strings.Cut(e, "=")
			v = os.Expand(v, func(name string) string { return envValue(cc.Env, name) })
			cc.Env = setEnv(cc.Env, k, v)
		}
		for _, k := range co.Unsetenv {
			cc.Env = unsetEnv(cc.Env, k)
		}
		if co.OSVersion != "" {
			cfg.OSVersion = co.OSVersion
		}
		for _, f := range co.OSFeatures {
			if name, remove := strings.CutSuffix(f, "-"); remove {
				cfg.OSFeatures = slices.DeleteFunc(cfg.OSFeatures, func(x string) bool { return x == name })
			} else if !slices.Contains(cfg.OSFeatures, f) {
				cfg.OSFeatures = append(cfg.OSFeatures, f)
			}
		}
		if setPlatform {
			cfg.OS, cfg.Architecture, cfg.Variant = want.OS, want.Architecture, want.Variant
		}
		return nil
	}}
}

// imagePlatform is the platform the final image records when the build
// named one (--platform, --arch, --os, --variant) that its config does
// not have yet: Buildah sets it on the image even when FROM --platform
// chose another base.
func (r *stageRun) imagePlatform() (ocispec.Platform, bool) {
	p := r.b.o.Platform
	if p.OS == "" && p.Architecture == "" && p.Variant == "" {
		return p, false
	}
	cfg := r.config()
	want := ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if p.OS != "" {
		want.OS = p.OS
	}
	if p.Architecture != "" {
		want.Architecture, want.Variant = p.Architecture, p.Variant
	}
	if want.OS == cfg.OS && want.Architecture == cfg.Architecture && want.Variant == cfg.Variant {
		return want, false
	}
	return want, true
}

func prefixed(prefix string, list []string) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = prefix + v
	}
	return out
}

// envValue is the value of name in env ("" when unset).
func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}

// unsetEnv removes name from env.
func unsetEnv(env []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == name
	})
}
