package storageconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestResolveSize: the size limit comes from the driver's own table of
// storage.conf, else [storage.options], and --storage-opt wins, with or
// without a driver prefix.
func TestResolveSize(t *testing.T) {
	t.Setenv("STORAGE_DRIVER", "")
	conf := `[storage.options]
size = "1G"
[storage.options.overlay]
size = "2G"
[storage.options.btrfs]
size = "3G"
`
	tests := []struct {
		name, conf, driver string
		opts               []string
		want               string
	}{
		{"overlay table", conf, "overlay", nil, "2G"},
		{"default driver is overlay", conf, "", nil, "2G"},
		{"btrfs table", conf, "btrfs", nil, "3G"},
		{"top level", "[storage.options]\nsize = \"1G\"\n", "btrfs", nil, "1G"},
		{"overlay table is not btrfs's", "[storage.options.overlay]\nsize = \"2G\"\n", "btrfs", nil, ""},
		{"flag", conf, "btrfs", []string{"size=10M"}, "10M"},
		{"prefixed flag", "", "btrfs", []string{"btrfs.size=10M"}, "10M"},
		{"overlay2 prefix", "", "overlay", []string{"overlay2.size=5M"}, "5M"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "storage.conf")
			if err := os.WriteFile(path, []byte(tt.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Resolve(Overrides{ConfigPath: path, Driver: tt.driver, Opts: tt.opts})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.DriverOpts["size"]; got != tt.want {
				t.Errorf("size = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestResolveConfigFile: the file --storage-conf names wins over
// $KILN_STORAGE_CONF, which wins over /etc/kiln/storage.conf; a missing
// file says nothing; $STORAGE_DRIVER wins over the file and a flag over
// both; a file that does not parse is an error naming it.
func TestResolveConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	vfs := write("vfs.conf", "[storage]\ndriver = \"vfs\"\ngraphroot = \"/srv/kiln\"\nrunroot = \"/run/k\"\n")
	btrfs := write("btrfs.conf", "[storage]\ndriver = \"btrfs\"\n")
	empty := write("empty.conf", "")
	bad := write("bad.conf", "[storage\n")
	missing := filepath.Join(dir, "missing.conf")
	tests := []struct {
		name            string
		env, envDriver  string
		o               Overrides
		want            Settings
		wantErrContains string
	}{
		{name: "env file", env: vfs, want: Settings{Root: "/srv/kiln", RunRoot: "/run/k", Driver: "vfs", ConfigPath: vfs}},
		{name: "flag file over env file", env: vfs, o: Overrides{ConfigPath: btrfs}, want: Settings{Driver: "btrfs", ConfigPath: btrfs}},
		{name: "empty file", env: empty, want: Settings{ConfigPath: empty}},
		{name: "missing file", env: missing, want: Settings{ConfigPath: missing}},
		{name: "STORAGE_DRIVER over the file", env: vfs, envDriver: "btrfs", want: Settings{Root: "/srv/kiln", RunRoot: "/run/k", Driver: "btrfs", ConfigPath: vfs}},
		{name: "flags over both", env: vfs, envDriver: "btrfs", o: Overrides{Root: "/r", RunRoot: "/rr", Driver: "overlay"},
			want: Settings{Root: "/r", RunRoot: "/rr", Driver: "overlay", ConfigPath: vfs}},
		{name: "bad file", env: bad, wantErrContains: bad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KILN_STORAGE_CONF", tt.env)
			t.Setenv("STORAGE_DRIVER", tt.envDriver)
			got, err := Resolve(tt.o)
			if tt.wantErrContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrContains) {
					t.Fatalf("Resolve = %v, want an error naming %s", err, tt.wantErrContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			def, _ := Resolve(Overrides{ConfigPath: empty})
			if tt.want.Root == "" {
				tt.want.Root, tt.want.RunRoot = def.Root, def.RunRoot
			}
			tt.want.DriverOpts = map[string]string{}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Resolve (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNormalizeDriver(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"", "overlay", nil},
		{"overlay2", "overlay", nil},
		{" VFS ", "vfs", nil},
		{"btrfs", "btrfs", nil},
		{"devicemapper", "", ErrDeviceMapper},
		{"zfs", "", nil},
	}
	for _, tt := range tests {
		got, err := NormalizeDriver(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") || (tt.err != nil && !errors.Is(err, tt.err)) {
			t.Errorf("NormalizeDriver(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	if _, err := NormalizeDriver("devicemapper"); err == nil || !strings.Contains(err.Error(), "overlay") {
		t.Errorf("devicemapper: %v, want an error naming what to use instead", err)
	}
}

// TestSetConfigDriver: the [storage] table's driver key changes and
// every other line stays, comments included, and so does the file's
// mode; a missing file stays missing.
func TestSetConfigDriver(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"replaces", "# mine\n[storage]\ndriver = \"overlay\" # old\ngraphroot = \"/x\"\n", "# mine\n[storage]\ndriver = \"vfs\"\ngraphroot = \"/x\"\n"},
		{"adds to the table", "[storage]\ngraphroot = \"/x\"\n[storage.options]\nsize = \"1G\"\n", "[storage]\ngraphroot = \"/x\"\ndriver = \"vfs\"\n[storage.options]\nsize = \"1G\"\n"},
		{"only the storage table's", "[other]\ndriver = \"x\"\n", "[other]\ndriver = \"x\"\n\n[storage]\ndriver = \"vfs\"\n"},
		{"empty file", "", "\n[storage]\ndriver = \"vfs\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "storage.conf")
			if err := os.WriteFile(path, []byte(tt.in), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := SetConfigDriver(path, "vfs"); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			if diff := cmp.Diff(tt.want, string(b)); diff != "" {
				t.Errorf("storage.conf (-want +got):\n%s", diff)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("storage.conf mode after SetConfigDriver: %v, %v; want it kept (0644)", fi.Mode(), err)
			}
			s, err := Resolve(Overrides{ConfigPath: path})
			if err != nil || s.Driver != "vfs" {
				t.Errorf("Resolve after SetConfigDriver: driver %q, %v", s.Driver, err)
			}
		})
	}
	missing := filepath.Join(t.TempDir(), "storage.conf")
	if err := SetConfigDriver(missing, "vfs"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SetConfigDriver made a missing storage.conf: %v", err)
	}
}
