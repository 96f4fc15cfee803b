package storagesetup

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
)

// planStorageConf plans to write storage.conf with the driver, graph
// root and run root, and the options of EXTRA_STORAGE_OPTIONS, keeping
// whatever else the file says.
func (pl *planner) planStorageConf() error {
	path := pl.req.Paths.StorageConf
	old := map[string]any{}
	if _, err := toml.DecodeFile(path, &old); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	want, err := decodeCopy(old)
	if err != nil {
		return err
	}
	st := tomlTable(want, "storage")
	st["driver"] = pl.plan.Driver
	st["graphroot"] = pl.plan.MountPath
	if pl.req.RunRoot != "" {
		st["runroot"] = pl.req.RunRoot
	}
	for _, kv := range pl.req.Config.ExtraOptions {
		k, v, _ := strings.Cut(kv, "=")
		opts := tomlTable(st, "options")
		switch k {
		case "min_free_space":
			opts["min_free_space"] = v
		case "size":
			// Under the driver's own table, which containers-storage.conf
			// readers know as well.
			table := "overlay"
			if pl.plan.Driver == "btrfs" {
				table = "btrfs"
			}
			tomlTable(opts, table)[k] = v
			if err := pl.checkSize(v); err != nil {
				return err
			}
		default: // mountopt
			tomlTable(opts, "overlay")[k] = v
		}
	}
	done := reflect.DeepEqual(old, want)
	pl.add(fmt.Sprintf("write %s (driver %s, graphroot %s)", path, pl.plan.Driver, pl.plan.MountPath), done, func(context.Context) error {
		var buf bytes.Buffer
		buf.WriteString("# Written by kiln storage setup; keys as in containers-storage.conf.\n")
		if err := toml.NewEncoder(&buf).Encode(want); err != nil {
			return err
		}
		return writeAtomic(path, buf.Bytes(), 0o644)
	})
	return nil
}

// decodeCopy deep-copies a decoded TOML document through an encode and
// decode, so that it compares equal to what a later read gives.
func decodeCopy(m map[string]any) (map[string]any, error) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(m); err != nil {
		return nil, err
	}
	out := map[string]any{}
	_, err := toml.Decode(buf.String(), &out)
	return out, err
}

// table returns the sub-table name of m, making it when absent.
func tomlTable(m map[string]any, name string) map[string]any {
	if t, ok := m[name].(map[string]any); ok {
		return t
	}
	t := map[string]any{}
	m[name] = t
	return t
}

// checkSize refuses a size limit the planned driver cannot enforce.
func (pl *planner) checkSize(v string) error {
	switch {
	case pl.plan.Driver == "vfs":
		return fmt.Errorf("EXTRA_STORAGE_OPTIONS asks for size=%s, and the vfs driver cannot limit a container's size: use btrfs, or overlay on XFS with project quotas", v)
	case pl.plan.Driver == "overlay" && len(pl.devs) > 0 && !pl.req.Host.XFSQuota:
		return fmt.Errorf("EXTRA_STORAGE_OPTIONS asks for overlay.size=%s, which needs XFS project quotas, and this kernel's XFS has no quota support (btrfs quota groups work: STORAGE_DRIVER=btrfs)", v)
	}
	return nil
}
