package run

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestVolumeOptions: Buildah's volume options O (overlay: the container
// writes, the source stays as it was; with upperdir= the writes are kept
// there) and U (the source is given to the process's user), under both
// isolations, with real files.
func TestVolumeOptions(t *testing.T) {
	requiresRoot(t)
	for _, iso := range isolations(t) {
		t.Run(iso.String(), func(t *testing.T) {
			for _, tc := range volumeCases() {
				t.Run(tc.name, func(t *testing.T) { runOne(t, iso, tc) })
			}
		})
	}
}

func volumeCases() []runCase {
	return []runCase{
		{name: "overlay volume discards writes", args: sh("cat /v/f; echo new > /v/g; echo more >> /v/f; rm /v/gone; ls /v"),
			setup:  overlaySetup(""),
			stdout: "hello\nf\ng\n",
			check: func(t *testing.T, _ string) {
				checkTree(t, overlaySource(t), map[string]string{"f": "hello\n", "gone": "x"})
			}},
		{name: "overlay volume keeps writes in upperdir", args: sh("echo world > /v/world; cat /v/f"),
			setup:  overlaySetup("upper"),
			stdout: "hello\n",
			check: func(t *testing.T, _ string) {
				checkTree(t, overlaySource(t), map[string]string{"f": "hello\n", "gone": "x"})
				checkTree(t, filepath.Join(filepath.Dir(overlaySource(t)), "upper"), map[string]string{"world": "world\n"})
			}},
		{name: "volume U gives the source to the user", args: sh("id -u; touch /v/new && stat -c '%u:%g' /v /v/f /v/sub /v/sub/g /v/new"),
			setup: func(t *testing.T, o *Options, _ string) {
				src := t.TempDir()
				must(t, os.WriteFile(filepath.Join(src, "f"), nil, 0o644))
				must(t, os.Mkdir(filepath.Join(src, "sub"), 0o755))
				must(t, os.WriteFile(filepath.Join(src, "sub/g"), nil, 0o644))
				o.User = "alice"
				o.Mounts = []specs.Mount{mustMount(t, ParseVolume, src+":/v:z,U")}
			},
			stdout: "1000\n1000:1000\n1000:1000\n1000:1000\n1000:1000\n1000:1000\n"},
		{name: "mount U gives the source to the user", args: sh("touch /v/new && stat -c '%u:%g' /v/new"),
			setup: func(t *testing.T, o *Options, _ string) {
				o.User = "1001:44"
				o.Mounts = []specs.Mount{mustMount(t, mountOnly, "type=bind,src="+t.TempDir()+",dst=/v,rw,U")}
			},
			stdout: "1001:44\n"},
	}
}

// overlaySetup mounts a source directory holding f and gone at /v with
// O; with upper, upperdir= and workdir= are given next to the source.
func overlaySetup(upper string) func(t *testing.T, o *Options, _ string) {
	return func(t *testing.T, o *Options, _ string) {
		base := t.TempDir()
		src := filepath.Join(base, "src")
		must(t, os.Mkdir(src, 0o755))
		must(t, os.WriteFile(filepath.Join(src, "f"), []byte("hello\n"), 0o644))
		must(t, os.WriteFile(filepath.Join(src, "gone"), []byte("x"), 0o644))
		opts := "O"
		if upper != "" {
			for _, d := range []string{"upper", "work"} {
				must(t, os.Mkdir(filepath.Join(base, d), 0o755))
			}
			opts += ",upperdir=" + filepath.Join(base, "upper") + ",workdir=" + filepath.Join(base, "work")
		}
		o.Mounts = []specs.Mount{mustMount(t, ParseVolume, src+":/v:"+opts)}
		overlaySources[t.Name()] = src
	}
}

// overlaySources remembers each test's overlay source for its check.
var overlaySources = map[string]string{}

func overlaySource(t *testing.T) string { return overlaySources[t.Name()] }

// checkTree fails t unless dir holds exactly the files in want.
func checkTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	entries, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		must(t, err)
		got[e.Name()] = string(b)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", dir, diff)
	}
}

// TestVolumeChownRefusesSystemDirs: U never chowns a system directory of
// the host, as Buildah refuses it.
func TestVolumeChownRefusesSystemDirs(t *testing.T) {
	for _, dir := range []string{"/", "/etc", "/usr"} {
		if err := chownTree(dir, 1000, 1000); err == nil || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("chownTree(%s) = %v, want it refused", dir, err)
		}
	}
}

// TestDefaultRlimits: a run given WithDefaultRlimits gets Buildah 1.28's
// limits (open files 1024:1024, processes pid_max), and a --ulimit
// replaces the default of its kind only.
func TestDefaultRlimits(t *testing.T) {
	requiresRoot(t)
	pids, ok := pidMax()
	if !ok {
		t.Fatal("no /proc/sys/kernel/pid_max")
	}
	var cur unix.Rlimit
	must(t, unix.Getrlimit(unix.RLIMIT_NPROC, &cur))
	nproc := fmt.Sprint(pids)
	if pids > cur.Max && !canRaiseRlimits() {
		nproc = fmt.Sprint(cur.Cur) // left as kiln's own
	}
	limits := sh("awk '/open files/{print $4, $5} /processes/{print $3}' /proc/self/limits")
	for _, iso := range isolations(t) {
		t.Run(iso.String(), func(t *testing.T) {
			runOne(t, iso, runCase{name: "defaults", args: limits,
				setup: func(t *testing.T, o *Options, _ string) {
					o.Settings.Rlimits = WithDefaultRlimits(nil)
				},
				stdout: nproc + "\n1024 1024\n"})
			runOne(t, iso, runCase{name: "ulimit nofile", args: limits,
				setup: func(t *testing.T, o *Options, _ string) {
					l, err := ParseUlimit("nofile=300:400")
					must(t, err)
					o.Settings.Rlimits = WithDefaultRlimits([]specs.POSIXRlimit{l})
				},
				stdout: nproc + "\n300 400\n"})
		})
	}
}

// TestTerminalWithoutHostTerminal: Terminal gives the process a pty
// even when kiln's stdin is no terminal (a pipe, a reader), as Buildah's
// run --terminal does; the input reaches it and its end is the pty's
// end-of-file, so a command reading to the end finishes.
func TestTerminalWithoutHostTerminal(t *testing.T) {
	requiresRoot(t)
	for _, iso := range isolations(t) {
		for _, kind := range []string{"pipe", "reader"} {
			t.Run(iso.String()+"/"+kind, func(t *testing.T) {
				var stdin, stdout bytes.Buffer
				o := Options{ContainerID: "tty-" + kind, Rootfs: busyboxRootfs(t), RunDir: t.TempDir(),
					Args: sh("test -t 0 && test -t 1 && echo on-a-tty; wc -c"), Terminal: true,
					Stdout: &stdout, Isolation: iso}
				stdin.WriteString("abc\n")
				o.Stdin = &stdin
				if kind == "pipe" {
					r, w, err := os.Pipe()
					must(t, err)
					defer r.Close()
					w.WriteString("abc\n")
					w.Close()
					o.Stdin = r
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30e9)
				defer cancel()
				code, err := Run(ctx, o)
				if err != nil || code != 0 {
					t.Fatalf("Run = %d, %v (stdout %q)", code, err, stdout.String())
				}
				out := stdout.String()
				if !strings.Contains(out, "on-a-tty\r\n") || !strings.HasSuffix(out, "4\r\n") {
					t.Errorf("stdout %q: want on-a-tty and the 4 bytes counted, in a pty's CRLF lines", out)
				}
			})
		}
	}
}
