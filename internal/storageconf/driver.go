package storageconf

import (
	"errors"
	"fmt"
	"strings"
)

// ErrDeviceMapper: a setting needs device-mapper (LVM or the removed
// devicemapper driver).
var ErrDeviceMapper = errors.New("devicemapper")

// NormalizeDriver maps a STORAGE_DRIVER to the driver kiln has, with the
// reason when there is none.
func NormalizeDriver(name string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "overlay", "overlay2":
		return "overlay", nil
	case "vfs":
		return "vfs", nil
	case "btrfs":
		return "btrfs", nil
	case "devicemapper":
		return "", fmt.Errorf("%w: STORAGE_DRIVER=devicemapper: the devicemapper driver was removed upstream (Docker 25 and containers/storage dropped it): "+
			"loop-backed thin pools were slow and corrupted under load, direct-lvm needed a dedicated device and careful pool autoextension on every host, "+
			"and overlay on XFS gives the same page-cache sharing without a thin pool. Use STORAGE_DRIVER=overlay (XFS with ftype=1 and project quotas for size limits) "+
			"or STORAGE_DRIVER=btrfs, and move images over with `kiln storage migrate`", ErrDeviceMapper)
	}
	return "", fmt.Errorf("unknown STORAGE_DRIVER %q: use overlay (overlay2 is the same), vfs or btrfs", name)
}
