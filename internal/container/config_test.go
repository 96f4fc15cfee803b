package container

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-build/kiln/internal/image"
)

// TestConfigPortsAndVolumes: config --port keeps a port as given (Buildah:
// "12345" stays "12345", no "/tcp" added), "P-" removes P, an entry
// starting with "-" clears the ports; a lone "-" clears the volumes.
func TestConfigPortsAndVolumes(t *testing.T) {
	set := func(keys ...string) map[string]struct{} {
		m := map[string]struct{}{}
		for _, k := range keys {
			m[k] = struct{}{}
		}
		return m
	}
	for _, tc := range []struct {
		name             string
		ports, volumes   []string
		start            map[string]struct{}
		wantPorts, wantV map[string]struct{}
	}{
		{name: "as given", ports: []string{"12345", "53/udp"}, volumes: []string{"/data"},
			wantPorts: set("12345", "53/udp"), wantV: set("/data")},
		{name: "remove one", start: set("12345", "80/tcp"), ports: []string{"12345-"}, volumes: []string{"/data-"},
			wantPorts: set("80/tcp"), wantV: nil},
		{name: "clear", start: set("12345", "80/tcp"), ports: []string{"-", "8080"}, volumes: []string{"-"},
			wantPorts: set("8080"), wantV: set()},
		{name: "any leading dash clears ports", start: set("12345"), ports: []string{"-all"},
			wantPorts: set(), wantV: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &image.Config{}
			cfg.Config.ExposedPorts = tc.start
			if tc.name == "clear" {
				cfg.Config.Volumes = set("/a", "/b")
			}
			c := &Container{State: State{Config: cfg}}
			if err := c.ApplyConfig(ConfigOptions{Ports: tc.ports, Volumes: tc.volumes}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantPorts, c.State.Config.Config.ExposedPorts); diff != "" {
				t.Errorf("ports (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantV, c.State.Config.Config.Volumes); diff != "" {
				t.Errorf("volumes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConfigOSFeaturesAndHealthcheckQuotes: a lone "-" clears the OS
// features (Buildah's config test: dynamic, -, removed, removed-, win32k
// leaves win32k); a --healthcheck whose quotes do not close is refused in
// Buildah's words and changes nothing.
func TestConfigOSFeaturesAndHealthcheckQuotes(t *testing.T) {
	c := &Container{State: State{Config: &image.Config{}}}
	if err := c.ApplyConfig(ConfigOptions{OSFeatures: []string{"dynamic", "-", "removed", "removed-", "win32k"}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"win32k"}, c.State.Config.OSFeatures); diff != "" {
		t.Errorf("OS features (-want +got):\n%s", diff)
	}
	bad := `AB "CD`
	err := c.ApplyConfig(ConfigOptions{Healthcheck: &bad})
	if want := `parsing --healthcheck "AB \"CD": invalid command line string`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("--healthcheck %q: error %v, want one containing %q", bad, err, want)
	}
	if c.State.Config.Config.Healthcheck != nil {
		t.Errorf("a refused --healthcheck changed the config: %+v", c.State.Config.Config.Healthcheck)
	}
	for _, good := range []string{`CMD curl -f "http://localhost/"`, `["CMD", "true"]`, `echo 'it''s'`, `echo \"`} {
		if err := c.ApplyConfig(ConfigOptions{Healthcheck: &good}); err != nil {
			t.Errorf("--healthcheck %q: %v", good, err)
		}
	}
}

// TestConfigCommandWords: --cmd and --shell in shell form are split as a
// shell splits words (quotes group, backslashes escape), as Buildah's
// config does; a quote left open is refused in Buildah's words; --env
// NAME without a value and none in the environment is refused.
func TestConfigCommandWords(t *testing.T) {
	c := &Container{State: State{Config: &image.Config{}}}
	cmd := `echo "a b" 'c d' e\ f`
	if err := c.ApplyConfig(ConfigOptions{Cmd: &cmd}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"echo", "a b", "c d", "e f"}, c.State.Config.Config.Cmd); diff != "" {
		t.Errorf("--cmd %q (-want +got):\n%s", cmd, diff)
	}
	for _, what := range []string{"cmd", "shell"} {
		bad := `AB "CD`
		o := ConfigOptions{}
		if what == "cmd" {
			o.Cmd = &bad
		} else {
			o.Shell = &bad
		}
		err := c.ApplyConfig(o)
		if want := `parsing --` + what + ` "AB \"CD": invalid command line string`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--%s %q: %v, want %q", what, bad, err, want)
		}
	}
	err := c.ApplyConfig(ConfigOptions{Env: []string{"KILN_TEST_SURELY_UNSET_VARIABLE"}})
	if want := `setting env "KILN_TEST_SURELY_UNSET_VARIABLE": no value given`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("--env NAME without a value: %v, want %q", err, want)
	}
}
