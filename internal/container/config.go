package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/image"
)

// ConfigOptions are the changes `kiln config` makes; nil and empty
// fields leave the config alone.
type ConfigOptions struct {
	Labels, Annotations []string // K=V, or K- to remove
	Env                 []string // K=V, K (from the environment), or K- to remove
	Ports, Volumes      []string // entries to add; a trailing "-" removes
	OnBuild             []string
	Entrypoint, Cmd     *string // JSON array or shell form ("" clears)
	Shell               *string // JSON array or words
	WorkingDir, User    *string
	StopSignal          *string
	Author, CreatedBy   *string
	Comment             *string
	HistoryComment      *string
	Arch, OS, Variant   *string
	OSVersion           *string
	OSFeatures          []string // features to add; a trailing "-" removes
	Hostname, Domain    *string
	Healthcheck         *string // "CMD ...", "CMD-SHELL ...", JSON, or "NONE"
	HealthInterval      *time.Duration
	HealthTimeout       *time.Duration
	HealthStartPeriod   *time.Duration
	HealthRetries       *int
}

// ErrBadConfig is wrapped by errors in config values.
var ErrBadConfig = errors.New("bad config value")

// ApplyConfig applies o to the container's config; nothing changes when
// any value is bad. Call Save to keep the result.
func (c *Container) ApplyConfig(o ConfigOptions) error {
	cfg := c.State.Config.Clone()
	cc := &cfg.Config
	var err error
	if cc.Labels, err = editMap(cc.Labels, o.Labels, "label"); err != nil {
		return err
	}
	annotations, err := editMap(c.State.ImageAnnotations, o.Annotations, "annotation")
	if err != nil {
		return err
	}
	if cc.Env, err = editEnv(cc.Env, o.Env); err != nil {
		return err
	}
	// Ports are kept as given ("12345" stays "12345", as Buildah keeps
	// it; EXPOSE in a build adds "/tcp"); an entry starting with "-"
	// clears them, a lone "-" clears the volumes.
	cc.ExposedPorts = editSet(cc.ExposedPorts, o.Ports, func(e string) bool { return strings.HasPrefix(e, "-") })
	cc.Volumes = editSet(cc.Volumes, o.Volumes, func(e string) bool { return e == "-" })
	cc.OnBuild = append(cc.OnBuild, o.OnBuild...)
	if o.Entrypoint != nil {
		if cc.Entrypoint, err = parseCommand(*o.Entrypoint, "entrypoint", shellOf(cfg)); err != nil {
			return err
		}
	}
	if o.Cmd != nil {
		if cc.Cmd, err = parseCommand(*o.Cmd, "cmd", nil); err != nil {
			return err
		}
	}
	if o.Shell != nil {
		if cc.Shell, err = parseCommand(*o.Shell, "shell", nil); err != nil {
			return err
		}
	}
	if err := applyHealth(cc, o); err != nil {
		return err
	}
	setString(&cc.WorkingDir, o.WorkingDir)
	setString(&cc.User, o.User)
	setString(&cc.StopSignal, o.StopSignal)
	setString(&cc.Hostname, o.Hostname)
	setString(&cc.Domainname, o.Domain)
	setString(&cfg.Author, o.Author)
	setString(&cfg.Comment, o.Comment)
	setString(&cfg.Architecture, o.Arch)
	setString(&cfg.OS, o.OS)
	setString(&cfg.Variant, o.Variant)
	setString(&cfg.OSVersion, o.OSVersion)
	cfg.OSFeatures = editList(cfg.OSFeatures, o.OSFeatures)
	setString(&c.State.ImageCreatedBy, o.CreatedBy)
	setString(&c.State.HistoryComment, o.HistoryComment)
	c.State.Config = cfg
	c.State.ImageAnnotations = annotations
	return nil
}

func setString(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

func shellOf(cfg *image.Config) []string {
	if len(cfg.Config.Shell) > 0 {
		return cfg.Config.Shell
	}
	return []string{"/bin/sh", "-c"}
}

// parseCommand reads a JSON array, or else shell form; for the
// entrypoint, shell form runs through the shell as Buildah does.
func parseCommand(v, what string, shell []string) ([]string, error) {
	t := strings.TrimSpace(v)
	if t == "" {
		return nil, nil
	}
	if strings.HasPrefix(t, "[") {
		var out []string
		if err := json.Unmarshal([]byte(t), &out); err != nil {
			return nil, fmt.Errorf("%w: --%s %q is not a JSON array of strings: %v", ErrBadConfig, what, v, err)
		}
		return out, nil
	}
	if shell != nil {
		return append(append([]string{}, shell...), v), nil
	}
	words, err := splitWords(v)
	if err != nil {
		// Buildah's words, which scripts match.
		return nil, fmt.Errorf("%w: parsing --%s %q: %v", ErrBadConfig, what, v, err)
	}
	return words, nil
}

// splitWords splits a command line into words as a shell would, without
// expanding anything: blanks separate words, quotes group them, a
// backslash escapes the next character (not inside single quotes). A
// quote left open is an error.
func splitWords(s string) ([]string, error) {
	if err := checkQuotes(s); err != nil {
		return nil, err
	}
	var words []string
	var cur strings.Builder
	inWord, escaped := false, false
	var quote rune
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func editMap(m map[string]string, edits []string, what string) (map[string]string, error) {
	for _, e := range edits {
		k, v, ok := strings.Cut(e, "=")
		if !ok && strings.HasSuffix(k, "-") {
			delete(m, strings.TrimSuffix(k, "-"))
			continue
		}
		if k == "" {
			return nil, fmt.Errorf("%w: %s %q has no key", ErrBadConfig, what, e)
		}
		if m == nil {
			m = map[string]string{}
		}
		m[k] = v
	}
	return m, nil
}

func editEnv(env, edits []string) ([]string, error) {
	for _, e := range edits {
		k, v, ok := strings.Cut(e, "=")
		if !ok && strings.HasSuffix(k, "-") {
			env = removeEnv(env, strings.TrimSuffix(k, "-"))
			continue
		}
		if k == "" {
			return nil, fmt.Errorf("%w: --env %q has no name", ErrBadConfig, e)
		}
		if !ok {
			// NAME alone takes kiln's own value, as Buildah's does;
			// none is an error in Buildah's words.
			if v = os.Getenv(k); v == "" {
				return nil, fmt.Errorf("%w: setting env %q: no value given", ErrBadConfig, k)
			}
		}
		env = append(removeEnv(env, k), k+"="+os.Expand(v, func(name string) string { return lookupEnv(env, name) }))
	}
	return env, nil
}

func removeEnv(env []string, k string) []string {
	out := env[:0:0]
	for _, e := range env {
		if name, _, _ := strings.Cut(e, "="); name != k {
			out = append(out, e)
		}
	}
	return out
}

func lookupEnv(env []string, k string) string {
	for _, e := range env {
		if name, v, _ := strings.Cut(e, "="); name == k {
			return v
		}
	}
	return ""
}

// editSet applies Buildah's edits of a set: "X" adds X, "X-" removes it,
// an entry clears says clears removes every one.
func editSet(m map[string]struct{}, edits []string, clears func(string) bool) map[string]struct{} {
	for _, e := range edits {
		switch {
		case clears(e):
			m = map[string]struct{}{}
		case strings.HasSuffix(e, "-"):
			delete(m, strings.TrimSuffix(e, "-"))
		default:
			if m == nil {
				m = map[string]struct{}{}
			}
			m[e] = struct{}{}
		}
	}
	return m
}

func applyHealth(cc *image.ContainerConfig, o ConfigOptions) error {
	if o.Healthcheck != nil {
		t := strings.TrimSpace(*o.Healthcheck)
		if err := checkQuotes(t); err != nil {
			// Buildah's words, which scripts match.
			return fmt.Errorf("%w: parsing --healthcheck %q: %v", ErrBadConfig, *o.Healthcheck, err)
		}
		switch {
		case t == "":
			cc.Healthcheck = nil
		case strings.EqualFold(t, "NONE"):
			cc.Healthcheck = &image.HealthConfig{Test: []string{"NONE"}}
		case strings.HasPrefix(t, "["):
			var test []string
			if err := json.Unmarshal([]byte(t), &test); err != nil {
				return fmt.Errorf("%w: --healthcheck %q: %v", ErrBadConfig, t, err)
			}
			cc.Healthcheck = &image.HealthConfig{Test: test}
		case strings.HasPrefix(t, "CMD-SHELL "):
			cc.Healthcheck = &image.HealthConfig{Test: []string{"CMD-SHELL", strings.TrimPrefix(t, "CMD-SHELL ")}}
		case strings.HasPrefix(t, "CMD "):
			cc.Healthcheck = &image.HealthConfig{Test: append([]string{"CMD"}, strings.Fields(strings.TrimPrefix(t, "CMD "))...)}
		default:
			cc.Healthcheck = &image.HealthConfig{Test: []string{"CMD-SHELL", t}}
		}
	}
	if o.HealthInterval == nil && o.HealthTimeout == nil && o.HealthStartPeriod == nil && o.HealthRetries == nil {
		return nil
	}
	if cc.Healthcheck == nil {
		return fmt.Errorf("%w: --healthcheck-interval, -timeout, -start-period and -retries need --healthcheck", ErrBadConfig)
	}
	if o.HealthInterval != nil {
		cc.Healthcheck.Interval = *o.HealthInterval
	}
	if o.HealthTimeout != nil {
		cc.Healthcheck.Timeout = *o.HealthTimeout
	}
	if o.HealthStartPeriod != nil {
		cc.Healthcheck.StartPeriod = *o.HealthStartPeriod
	}
	if o.HealthRetries != nil {
		cc.Healthcheck.Retries = *o.HealthRetries
	}
	return nil
}

// editList adds each entry of edits to list, or removes it when it ends
// in "-"; entries keep their order and are not repeated.
func editList(list, edits []string) []string {
	for _, e := range edits {
		if e == "-" { // Buildah's: a lone "-" clears the list
			list = nil
			continue
		}
		if name, ok := strings.CutSuffix(e, "-"); ok {
			list = slices.DeleteFunc(list, func(v string) bool { return v == name })
		} else if !slices.Contains(list, e) {
			list = append(list, e)
		}
	}
	return list
}

// checkQuotes reports a command line whose quotes do not close (Buildah
// splits --healthcheck as a shell would and refuses such a line).
func checkQuotes(s string) error {
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case r == '\\' && quote != '\'':
			escaped = true
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		}
	}
	if quote != 0 || escaped {
		return errors.New("invalid command line string")
	}
	return nil
}
