package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagStatus says what kiln does with a flag: "implemented" (it does
// what Buildah's does), "refused" (given, it fails naming itself, exit
// 125) or "no-effect" (accepted where Buildah's has no effect either;
// its help says so).
func flagStatus(cmd *cobra.Command, f *pflag.Flag) string {
	if _, ok := f.Value.(refusedFlag); ok {
		return "refused"
	}
	if strings.HasPrefix(f.Usage, "no effect") {
		return "no-effect"
	}
	return "implemented"
}

// auditFlags lists "VERB --FLAG STATUS" for every flag of every verb.
func auditFlags() []string {
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(c.CommandPath(), "kiln")
		if path == "" {
			c.PersistentFlags().VisitAll(func(f *pflag.Flag) {
				out = append(out, fmt.Sprintf("(global) --%s %s", f.Name, flagStatus(c, f)))
			})
		}
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			out = append(out, fmt.Sprintf("%s --%s %s", strings.TrimSpace(path), f.Name, flagStatus(c, f)))
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand())
	slices.Sort(out)
	return out
}

// TestFlagsAudit: no flag is accepted and ignored. Every flag of every
// verb is implemented, refused or (as in Buildah) of no effect, and
// testdata/flags.golden says which: a change shows in review. Run with
// KILN_UPDATE_GOLDEN=1 to rewrite it after adding or implementing one.
func TestFlagsAudit(t *testing.T) {
	got := auditFlags()
	golden := filepath.Join("testdata", "flags.golden")
	if os.Getenv("KILN_UPDATE_GOLDEN") == "1" {
		must(t, os.WriteFile(golden, []byte(strings.Join(got, "\n")+"\n"), 0o644))
	}
	data, err := os.ReadFile(golden)
	must(t, err)
	want := strings.Split(strings.TrimSpace(string(data)), "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flags differ from %s (-want +got); rerun with KILN_UPDATE_GOLDEN=1 if the change is meant:\n%s", golden, diff)
	}
}

// TestRefusedFlagsFail: each refused flag, given, fails with exit 125 and
// names itself, before anything is done.
func TestRefusedFlagsFail(t *testing.T) {
	e := newEnv(t, "")
	ctxDir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\n"), 0o644))
	n := 0
	for _, line := range auditFlags() {
		fields := strings.Fields(line)
		if fields[len(fields)-1] != "refused" || fields[0] == "(global)" {
			continue
		}
		verb := fields[:len(fields)-2]
		flag := fields[len(fields)-2]
		args := append(append([]string{}, verb...), flag+"=x")
		if verb[len(verb)-1] == "build" || verb[len(verb)-1] == "bud" {
			args = append(args, ctxDir)
		}
		_, errOut, code := e.kiln(args...)
		if code != 125 || !strings.Contains(errOut, flag) {
			t.Errorf("kiln %s: exit %d, %q; want 125 naming %s", strings.Join(args, " "), code, errOut, flag)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no refused flag found")
	}
	for _, args := range [][]string{
		{"--userns-uid-map", "0:1:1", "images"},
		{"--default-mounts-file", "/etc/mounts", "images"},
		{"--cgroup-manager", "systemd", "images"},
	} {
		if _, errOut, code := e.kiln(args...); code != 125 || !strings.Contains(errOut, args[0]) {
			t.Errorf("kiln %v: exit %d, %q; want 125 naming %s", args, code, errOut, args[0])
		}
	}
	e.mustKiln("--cgroup-manager", "cgroupfs", "images")
}
