package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/internal/container"
)

func init() { register(newConfigCommand) }

func newConfigCommand() *cobra.Command {
	var o container.ConfigOptions
	var strs = map[string]**string{}
	var unset unsetFlags
	cmd := &cobra.Command{
		Use:   "config [options] CONTAINER",
		Short: "Update image configuration settings of a working container",
		Args:  exactArgs(1, "a container name or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			f := cmd.Flags()
			for name, dst := range strs {
				if f.Changed(name) {
					v, _ := f.GetString(name)
					*dst = &v
				}
			}
			unset.apply(&o)
			for name, dst := range map[string]**time.Duration{
				"healthcheck-interval": &o.HealthInterval, "healthcheck-timeout": &o.HealthTimeout,
				"healthcheck-start-period": &o.HealthStartPeriod,
			} {
				if err := setDuration(f, name, dst); err != nil {
					return err
				}
			}
			if f.Changed("healthcheck-retries") {
				v, _ := f.GetInt("healthcheck-retries")
				o.HealthRetries = &v
			}
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			c, err := container.Open(ctx, st, args[0])
			if err != nil {
				return err
			}
			if err := c.ApplyConfig(o); err != nil {
				return err
			}
			if f := c.Config().DockerOnlyFields(); len(f) > 0 {
				logger.Debug("docker-only fields set; they survive only with commit --format docker", "fields", f)
			}
			return c.Save(ctx)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.Labels, "label", "l", nil, "add image label KEY=VALUE (KEY- removes)")
	f.StringArrayVarP(&o.Annotations, "annotation", "a", nil, "add manifest annotation KEY=VALUE (KEY- removes)")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "add environment variable KEY=VALUE (KEY- removes)")
	f.StringArrayVarP(&o.Ports, "port", "p", nil, "expose a port (PORT[/PROTO]; trailing - removes)")
	f.StringArrayVarP(&o.Volumes, "volume", "v", nil, "add a volume mount point (trailing - removes)")
	f.StringArrayVar(&o.OnBuild, "onbuild", nil, "add an ONBUILD trigger (docker format only)")
	shorthands := map[string]string{"user": "u"} // Buildah's
	for name, dst := range map[string]**string{
		"entrypoint": &o.Entrypoint, "cmd": &o.Cmd, "shell": &o.Shell, "workingdir": &o.WorkingDir,
		"user": &o.User, "stop-signal": &o.StopSignal, "author": &o.Author, "created-by": &o.CreatedBy,
		"comment": &o.Comment, "history-comment": &o.HistoryComment, "arch": &o.Arch, "os": &o.OS,
		"variant": &o.Variant, "os-version": &o.OSVersion, "hostname": &o.Hostname, "domainname": &o.Domain, "healthcheck": &o.Healthcheck,
	} {
		f.StringP(name, shorthands[name], "", "set the image's "+name)
		strs[name] = dst
	}
	f.String("healthcheck-interval", "", "time between health checks")
	f.String("healthcheck-timeout", "", "time a health check may take")
	f.String("healthcheck-start-period", "", "grace period before health checks count")
	f.Int("healthcheck-retries", 0, "failures before unhealthy")
	f.StringArrayVar(&o.OSFeatures, "os-feature", nil, "add an OS feature the image requires (FEATURE- removes)")
	f.StringArrayVar(&unset.labels, "unsetlabel", nil, "remove this label (also one the base image set)")
	f.StringArrayVar(&unset.env, "unsetenv", nil, "remove this environment variable")
	f.StringArrayVar(&unset.annotations, "unsetannotation", nil, "remove this annotation")
	addUnsupportedFlags(f, "add-history!")
	return optionsFirst(cmd)
}

// setDuration reads duration flag name into dst when it was given; a bad
// value is refused in Buildah's words.
// unsetFlags are config's --unsetlabel, --unsetenv and --unsetannotation.
type unsetFlags struct{ labels, env, annotations []string }

// apply adds them to o: --unsetX K is --X K-, as Buildah's config reads it.
func (u unsetFlags) apply(o *container.ConfigOptions) {
	for _, k := range u.labels {
		o.Labels = append(o.Labels, k+"-")
	}
	for _, k := range u.env {
		o.Env = append(o.Env, k+"-")
	}
	for _, k := range u.annotations {
		o.Annotations = append(o.Annotations, k+"-")
	}
}

func setDuration(f *pflag.FlagSet, name string, dst **time.Duration) error {
	if !f.Changed(name) {
		return nil
	}
	s, _ := f.GetString(name)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("parsing --%s %q: %w", name, s, err)
	}
	*dst = &v
	return nil
}
