package storagesetup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	units "github.com/docker/go-units"

	"github.com/kiln-build/kiln/internal/storageconf"
)

// DefaultSetupFile is the classic KEY=VALUE file `kiln storage setup` reads.
const DefaultSetupFile = "/etc/sysconfig/kiln-storage-setup"

// SetupConfig is what `kiln storage setup` is asked to do, in the keys of
// container-storage-setup that still mean something.
type SetupConfig struct {
	Driver         string   // STORAGE_DRIVER: overlay, vfs or btrfs
	Devs           []string // DEVS: block devices, or regular files used through loop devices
	MountPath      string   // CONTAINER_ROOT_LV_MOUNT_PATH; "" means the graph root
	Size           SizeSpec // CONTAINER_ROOT_LV_SIZE
	GrowPart       bool     // GROWPART: grow the filesystem to fill its device
	WipeSignatures bool     // WIPE_SIGNATURES: allow remaking a device that holds data
	ExtraOptions   []string // EXTRA_STORAGE_OPTIONS, as KEY=VALUE storage options
	VG             string   // VG: an LVM volume group to carve the store from
	LVName         string   // CONTAINER_ROOT_LV_NAME
	// Warnings are what reading the settings found worth saying.
	Warnings []string
}

// SizeSpec is a CONTAINER_ROOT_LV_SIZE: an absolute size ("20G") or a
// percentage of free space ("40%FREE"). The zero value means all of it.
type SizeSpec struct {
	Bytes   int64
	Percent int    // 1..100, when Bytes is 0
	Of      string // FREE (or VG with LVM)
}

// ParseSizeSpec parses "40%FREE", "100%VG" or an absolute size such as
// "20G" or "512M" (binary units, as lvcreate takes them).
func ParseSizeSpec(s string) (SizeSpec, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return SizeSpec{}, nil
	}
	if pct, of, ok := strings.Cut(s, "%"); ok {
		n, err := strconv.Atoi(pct)
		of = strings.ToUpper(of)
		if err != nil || n < 1 || n > 100 || (of != "FREE" && of != "VG") {
			return SizeSpec{}, fmt.Errorf("bad CONTAINER_ROOT_LV_SIZE %q: want N%%FREE with N in 1..100, or a size such as 20G", s)
		}
		return SizeSpec{Percent: n, Of: of}, nil
	}
	n, err := units.RAMInBytes(s)
	if err != nil || n <= 0 {
		return SizeSpec{}, fmt.Errorf("bad CONTAINER_ROOT_LV_SIZE %q: want N%%FREE or a size such as 20G", s)
	}
	return SizeSpec{Bytes: n}, nil
}

// String gives the spec back in the file's form.
func (s SizeSpec) String() string {
	switch {
	case s.Bytes > 0:
		return units.BytesSize(float64(s.Bytes))
	case s.Percent > 0:
		return fmt.Sprintf("%d%%%s", s.Percent, s.Of)
	}
	return "100%FREE"
}

// Of computes the size in bytes against free bytes.
func (s SizeSpec) bytesOf(free int64) int64 {
	switch {
	case s.Bytes > 0:
		return s.Bytes
	case s.Percent > 0:
		return free / 100 * int64(s.Percent)
	}
	return free
}

// ReadSetupFile reads a KEY=VALUE file in shell syntax (comments, blank
// lines, "export", single or double quotes) into c. A missing file is
// no error when optional is set.
func (c *SetupConfig) ReadSetupFile(path string, optional bool) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && optional {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading setup file: %w", err)
	}
	defer f.Close()
	if err := c.readSetup(f, path); err != nil {
		return err
	}
	return nil
}

func (c *SetupConfig) readSetup(r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%s:%d: want KEY=VALUE, got %q", name, n, line)
		}
		val, err := unquote(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if err := c.Set(strings.TrimSpace(k), val); err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	return sc.Err()
}

func unquote(v string) (string, error) {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') {
		if v[len(v)-1] != v[0] {
			return "", fmt.Errorf("unterminated quote in %s", v)
		}
		return v[1 : len(v)-1], nil
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	return v, nil
}

// Set applies one KEY=VALUE setting.
func (c *SetupConfig) Set(key, value string) error {
	var err error
	switch key {
	case "STORAGE_DRIVER":
		c.Driver, err = storageconf.NormalizeDriver(value)
	case "DEVS":
		c.Devs = strings.Fields(value)
	case "CONTAINER_ROOT_LV_MOUNT_PATH":
		c.MountPath = value
	case "CONTAINER_ROOT_LV_SIZE":
		c.Size, err = ParseSizeSpec(value)
	case "GROWPART":
		c.GrowPart, err = parseBool(key, value)
	case "WIPE_SIGNATURES":
		c.WipeSignatures, err = parseBool(key, value)
	case "EXTRA_STORAGE_OPTIONS", "EXTRA_DOCKER_STORAGE_OPTIONS":
		c.ExtraOptions, err = parseStorageOpts(value)
	case "VG":
		c.VG = value
	case "CONTAINER_ROOT_LV_NAME":
		c.LVName = value
	case "DATA_SIZE", "MIN_DATA_SIZE", "CHUNK_SIZE", "POOL_AUTOEXTEND_THRESHOLD", "POOL_AUTOEXTEND_PERCENT",
		"DEVICE_WAIT_TIMEOUT", "AUTO_EXTEND_POOL", "POOL_META_SIZE", "CONTAINER_THINPOOL":
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s is a devicemapper thin-pool setting; devicemapper was removed, so it is ignored", key))
	case "ROOT_SIZE", "DOCKER_ROOT_VOLUME", "DOCKER_ROOT_VOLUME_SIZE", "CONTAINER_ROOT_LV_SIZE_MIN":
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s is not supported; use CONTAINER_ROOT_LV_SIZE", key))
	default:
		c.Warnings = append(c.Warnings, fmt.Sprintf("unknown setting %s is ignored", key))
	}
	return err
}

func parseBool(key, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "1", "y":
		return true, nil
	case "false", "no", "0", "n", "":
		return false, nil
	}
	return false, fmt.Errorf("bad %s %q: want true or false", key, v)
}

// parseStorageOpts reads docker-style "--storage-opt K=V" lists (bare
// K=V also works) into normalized K=V options.
func parseStorageOpts(v string) ([]string, error) {
	var out []string
	fields := strings.Fields(v)
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		switch {
		case f == "--storage-opt" || f == "-s":
			if i+1 == len(fields) {
				return nil, fmt.Errorf("EXTRA_STORAGE_OPTIONS: %s needs a KEY=VALUE", f)
			}
			i++
			f = fields[i]
		case strings.HasPrefix(f, "--storage-opt="):
			f = strings.TrimPrefix(f, "--storage-opt=")
		}
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("EXTRA_STORAGE_OPTIONS: bad option %q: want KEY=VALUE", f)
		}
		k = storageconf.TrimDriverPrefix(k)
		if strings.HasPrefix(k, "dm.") {
			return nil, fmt.Errorf("EXTRA_STORAGE_OPTIONS: %s is a devicemapper option: %w", k, storageconf.ErrDeviceMapper)
		}
		switch k {
		case "size", "mountopt", "min_free_space":
		default:
			return nil, fmt.Errorf("EXTRA_STORAGE_OPTIONS: unknown option %q: kiln knows size (overlay.size, btrfs.size), overlay.mountopt and min_free_space", k)
		}
		out = append(out, k+"="+val)
	}
	return out, nil
}
