package storagesetup

import (
	"os"
	"path/filepath"
	"testing"
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
