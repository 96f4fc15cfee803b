package container

import (
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
