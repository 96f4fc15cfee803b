// Package storageconf settles where the store lives and with which
// driver, for every command: defaults, storage.conf
// (/etc/kiln/storage.conf, or the file $KILN_STORAGE_CONF or
// --storage-conf names), the environment and flags. It also names the
// drivers kiln has and changes the driver storage.conf names.
package storageconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultConfigPath is where storage.conf is read from when neither
// Overrides.ConfigPath nor $KILN_STORAGE_CONF names another file.
const DefaultConfigPath = "/etc/kiln/storage.conf"

// Config is the [storage] table of storage.conf, keys named as in
// containers-storage.conf.
type Config struct {
	Storage struct {
		Driver    string `toml:"driver"`
		GraphRoot string `toml:"graphroot"`
		RunRoot   string `toml:"runroot"`
		Options   struct {
			MountOpt     string `toml:"mountopt"`
			MinFreeSpace string `toml:"min_free_space"`
			// SpaceWarnPercent: `kiln info` warns when data, metadata or
			// inodes are fuller than this (default 85).
			SpaceWarnPercent string `toml:"space_warn_percent"`
			// Size is every container's size limit, whatever the driver;
			// a driver's own table overrides it.
			Size    string `toml:"size"`
			Overlay struct {
				MountOpt string `toml:"mountopt"`
				Size     string `toml:"size"`
			} `toml:"overlay"`
			Btrfs struct {
				Size string `toml:"size"`
			} `toml:"btrfs"`
		} `toml:"options"`
	} `toml:"storage"`
}

// Overrides are what the command line says; empty fields say nothing.
type Overrides struct {
	ConfigPath, Root, RunRoot, Driver string
	Opts                              []string
}

// Settings are the resolved store location and driver.
type Settings struct {
	Root, RunRoot, Driver string
	DriverOpts            map[string]string
	ConfigPath            string
}

// Resolve merges defaults, storage.conf (o.ConfigPath, else
// $KILN_STORAGE_CONF, else DefaultConfigPath; a missing file says
// nothing), the environment ($STORAGE_DRIVER) and o, in that order.
func Resolve(o Overrides) (Settings, error) {
	s := Settings{Root: "/var/lib/kiln", RunRoot: "/run/kiln", DriverOpts: map[string]string{}}
	if os.Geteuid() != 0 {
		data := os.Getenv("XDG_DATA_HOME")
		if data == "" {
			data = filepath.Join(os.Getenv("HOME"), ".local", "share")
		}
		s.Root = filepath.Join(data, "kiln")
		s.RunRoot = filepath.Join(os.TempDir(), fmt.Sprintf("kiln-run-%d", os.Getuid()))
	}
	path := o.ConfigPath
	if path == "" {
		path = os.Getenv("KILN_STORAGE_CONF")
	}
	if path == "" {
		path = DefaultConfigPath
	}
	s.ConfigPath = path
	var c Config
	if _, err := toml.DecodeFile(path, &c); err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("reading %s: %w", path, err)
	}
	set(&s.Root, c.Storage.GraphRoot)
	set(&s.RunRoot, c.Storage.RunRoot)
	set(&s.Driver, c.Storage.Driver)
	if c.Storage.Options.MinFreeSpace != "" {
		s.DriverOpts["min_free_space"] = c.Storage.Options.MinFreeSpace
	}
	if v := c.Storage.Options.SpaceWarnPercent; v != "" {
		s.DriverOpts["space_warn_percent"] = v
	}
	if v := c.Storage.Options.Overlay.MountOpt; v != "" {
		s.DriverOpts["mountopt"] = v
	}
	set(&s.Driver, os.Getenv("STORAGE_DRIVER"))
	set(&s.Root, o.Root)
	set(&s.RunRoot, o.RunRoot)
	set(&s.Driver, o.Driver)
	if v := confSize(c, s.Driver); v != "" {
		s.DriverOpts["size"] = v
	}
	for _, kv := range o.Opts {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return s, fmt.Errorf("bad --storage-opt %q: want KEY=VALUE", kv)
		}
		s.DriverOpts[TrimDriverPrefix(k)] = v
	}
	return s, nil
}

func set(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// confSize is the size limit storage.conf gives the driver: its own
// table's ([storage.options.overlay] or [storage.options.btrfs]), else
// [storage.options]' own. An unnamed driver is overlay, the default.
func confSize(c Config, driver string) string {
	o := c.Storage.Options
	own := o.Overlay.Size
	if driver == "btrfs" {
		own = o.Btrfs.Size
	}
	if own != "" {
		return own
	}
	return o.Size
}

// TrimDriverPrefix turns a driver-qualified option (overlay.size,
// overlay2.mountopt, btrfs.size) into the key drivers read.
func TrimDriverPrefix(k string) string {
	for _, p := range []string{"overlay.", "overlay2.", "btrfs."} {
		if strings.HasPrefix(k, p) {
			return strings.TrimPrefix(k, p)
		}
	}
	return k
}
