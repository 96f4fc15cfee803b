// Package storageconf settles where the store lives and with which
// driver, for every command: defaults, storage.conf
// (/etc/kiln/storage.conf, or the file $KILN_STORAGE_CONF or
// --storage-conf names), the environment and flags. It also names the
// drivers kiln has and changes the driver storage.conf names.
//
// A rootless kiln (an ordinary user, or kiln in the user namespace it made
// for one: see internal/idmap) has its own store, as containers/storage
// gives one: $XDG_DATA_HOME/kiln (~/.local/share/kiln), run root
// $XDG_RUNTIME_DIR/kiln, and its own ~/.config/kiln/storage.conf; the
// stores of root and of users never mix (ErrForeignStore).
package storageconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"

	"github.com/kiln-build/kiln/internal/idmap"
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

// ErrForeignStore means the store belongs to another user than the one
// kiln runs for: root's store for a rootless kiln, or a user's for root.
var ErrForeignStore = errors.New("the store belongs to another user")

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
// $KILN_STORAGE_CONF, else DefaultConfigPath, or for a rootless kiln
// UserConfigPath; a missing file says nothing), the environment
// ($STORAGE_DRIVER) and o, in that order. A rootless kiln with no file
// of its own takes the driver and options of DefaultConfigPath but never
// its graphroot and runroot. A store that belongs to another user is an
// error wrapping ErrForeignStore.
func Resolve(o Overrides) (Settings, error) {
	s := Settings{Root: "/var/lib/kiln", RunRoot: "/run/kiln", DriverOpts: map[string]string{}}
	rootless := idmap.Rootless()
	if rootless {
		var err error
		if s.Root, s.RunRoot, err = rootlessDirs(); err != nil {
			return s, err
		}
	}
	path := o.ConfigPath
	if path == "" {
		path = os.Getenv("KILN_STORAGE_CONF")
	}
	systemOnly := false
	if path == "" && rootless {
		path = UserConfigPath()
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			path, systemOnly = DefaultConfigPath, true
		}
	}
	if path == "" {
		path = DefaultConfigPath
	}
	s.ConfigPath = path
	var c Config
	if _, err := toml.DecodeFile(path, &c); err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("reading %s: %w", path, err)
	}
	if systemOnly {
		c.Storage.GraphRoot, c.Storage.RunRoot = "", ""
		s.ConfigPath = UserConfigPath() // where `storage setup` writes
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
	return s, checkOwner(s.Root, rootless)
}

// UserConfigPath is a rootless kiln's storage.conf:
// $XDG_CONFIG_HOME/kiln/storage.conf, else ~/.config/kiln/storage.conf.
func UserConfigPath() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		dir = filepath.Join(os.Getenv("HOME"), ".config")
	}
	return filepath.Join(dir, "kiln", "storage.conf")
}

// rootlessDirs are a rootless kiln's default root and run root, as
// containers/storage chooses them: $XDG_DATA_HOME/kiln (else
// ~/.local/share/kiln), and $XDG_RUNTIME_DIR/kiln, else
// /run/user/UID/kiln when the user owns that directory, else
// $TMPDIR/kiln-run-UID.
func rootlessDirs() (root, runRoot string, err error) {
	uid, _ := idmap.RootlessIDs()
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" {
		home := os.Getenv("HOME")
		if home == "" {
			return "", "", errors.New("a rootless kiln keeps its store in $XDG_DATA_HOME or $HOME, and neither is set: set one, or give --root and --runroot")
		}
		data = filepath.Join(home, ".local", "share")
	}
	root = filepath.Join(data, "kiln")
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		return root, filepath.Join(rt, "kiln"), nil
	}
	if dir := fmt.Sprintf("/run/user/%d", uid); ownedByMe(dir) {
		return root, filepath.Join(dir, "kiln"), nil
	}
	return root, filepath.Join(os.TempDir(), fmt.Sprintf("kiln-run-%d", uid)), nil
}

// ownedByMe reports whether path is a directory this process's user owns
// (in a user namespace, the user is its uid 0 when it is kiln's own).
func ownedByMe(path string) bool {
	var st syscall.Stat_t
	return syscall.Stat(path, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR && st.Uid == uint32(os.Geteuid())
}

// checkOwner refuses a store whose root directory another user owns: a
// rootless kiln sees root's files as owned by the overflow uid, and root
// would see a user's layers with their subordinate IDs as they are on
// disk, not as they are in the images. A store not made yet is fine.
func checkOwner(root string, rootless bool) error {
	var st syscall.Stat_t
	if err := syscall.Stat(root, &st); err != nil || st.Uid == uint32(os.Geteuid()) {
		return nil
	}
	if rootless {
		uid, _ := idmap.RootlessIDs()
		return fmt.Errorf("%w: %s is not owned by uid %d, which this rootless kiln runs for (is it root's store?): a rootless kiln keeps a store of its own (by default ~/.local/share/kiln): give another --root, or run kiln as root for this one", ErrForeignStore, root, uid)
	}
	return fmt.Errorf("%w: %s is owned by uid %d, not root: it is a rootless kiln's store, whose files carry that user's subordinate IDs: run kiln as that user for it, or give another --root", ErrForeignStore, root, st.Uid)
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
