package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/storagesetup/loop/looptest"
)

// TestStorageSetupAndInfo runs the administrator's workflow on a loop
// file: setup btrfs (dry run, real, again), then info in text, JSON and
// template form, with a working container counted and a warning shown.
func TestStorageSetupAndInfo(t *testing.T) {
	requiresRoot(t)
	looptest.Image(t, 1) // skips without loop devices
	dir := t.TempDir()
	mp, conf, img := filepath.Join(dir, "store"), filepath.Join(dir, "storage.conf"), filepath.Join(dir, "disk.img")
	t.Cleanup(func() {
		for unix.Unmount(mp, 0) == nil {
		}
	})
	setupFile := filepath.Join(dir, "kiln-storage-setup")
	if err := os.WriteFile(setupFile, []byte("STORAGE_DRIVER=btrfs\nDEVS="+img+"\nCONTAINER_ROOT_LV_SIZE=600M\nCONTAINER_ROOT_LV_MOUNT_PATH="+mp+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kiln := func(args ...string) string {
		t.Helper()
		full := append([]string{"--storage-conf", conf, "--runroot", filepath.Join(dir, "run")}, args...)
		out, err := exec.Command(kilnBin, full...).CombinedOutput()
		if err != nil {
			t.Fatalf("kiln %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	setup := []string{"storage", "setup", "--setup-file", setupFile, "--fstab", filepath.Join(dir, "fstab"), "--systemd", "false"}
	if out := kiln(append(setup, "--dry-run")...); !strings.Contains(out, "dry run: 5 change(s) planned") {
		t.Errorf("dry run:\n%s", out)
	}
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Fatalf("the dry run created %s", img)
	}
	if out := kiln(setup...); !strings.Contains(out, "storage is set up: driver btrfs") {
		t.Errorf("setup:\n%s", out)
	}
	if out := kiln(setup...); !strings.Contains(out, "nothing to change") {
		t.Errorf("second setup:\n%s", out)
	}
	kiln("from", "--name", "w1", "scratch")
	if out := kiln("info"); !strings.Contains(out, "Storage Driver: btrfs") || !strings.Contains(out, "Containers: 1") {
		t.Errorf("kiln info:\n%s", out)
	}
	var si storageInfo
	if err := json.Unmarshal([]byte(kiln("storage", "info", "--format", "json")), &si); err != nil {
		t.Fatal(err)
	}
	if si.GraphRoot != mp || si.BackingFS != "btrfs" || si.DataSpaceTotal < 500<<20 || si.DataSpaceTotal > 600<<20 ||
		si.MetadataSpaceTotal == 0 || si.MetadataSpaceUsed == 0 || si.ContainerStore["number"] != 1 || !strings.Contains(si.BackingDevice, img) {
		t.Errorf("storage info: %+v", si)
	}
	if out := kiln("info", "--format", "{{.store.GraphDriverName}} {{.store.BackingFilesystem}}"); strings.TrimSpace(out) != "btrfs btrfs" {
		t.Errorf("template: %q", out)
	}
	if out := kiln("--storage-opt", "space_warn_percent=0.0001", "storage", "info"); !strings.Contains(out, "WARNING: data space is") {
		t.Errorf("no warning above the threshold:\n%s", out)
	}
}

func TestStorageSetupDevicemapper(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "setup")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kilnBin, "--storage-conf", filepath.Join(dir, "c"), "storage", "setup", "--setup-file", empty, "--driver", "devicemapper", "--dry-run")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "removed upstream") || !strings.Contains(string(out), "overlay") {
		t.Errorf("devicemapper: %v\n%s", err, out)
	}
}
