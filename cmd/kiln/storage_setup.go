package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/storageconf"
	"github.com/kiln-build/kiln/internal/storagesetup"
)

type storageSetupOptions struct {
	SetupFile string
	Config    string
	DryRun    bool
	// Flags named after the file's keys; a flag given wins over the files.
	Driver, MountPath, Size, ExtraOptions, VG, LVName string
	Devs                                              []string
	GrowPart, WipeSignatures                          bool
	// Where persistence goes; tests point these at temp files.
	Fstab, UnitDir, Systemd string
}

func init() { registerStorage(newStorageSetupCommand) }

func newStorageSetupCommand() *cobra.Command {
	var o storageSetupOptions
	cmd := &cobra.Command{
		Use:   "setup [options]",
		Short: "Put the store on a dedicated filesystem made right for the driver, and write storage.conf",
		Long: `Reads ` + storagesetup.DefaultSetupFile + ` (KEY=VALUE, as container-storage-setup):
STORAGE_DRIVER, DEVS, CONTAINER_ROOT_LV_MOUNT_PATH, CONTAINER_ROOT_LV_SIZE, GROWPART,
WIPE_SIGNATURES, EXTRA_STORAGE_OPTIONS, VG, CONTAINER_ROOT_LV_NAME; then the --config file;
then flags. Makes XFS (ftype=1, project quotas) for overlay or btrfs for btrfs on DEVS,
mounts it, persists the mount and writes storage.conf. Running it again changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runStorageSetup(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.SetupFile, "setup-file", storagesetup.DefaultSetupFile, "the KEY=VALUE setup file (read when present)")
	f.StringVar(&o.Config, "config", "", "a docker-storage-setup style KEY=VALUE file, read after the setup file")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan and change nothing")
	f.StringVar(&o.Driver, "driver", "", "STORAGE_DRIVER: overlay, vfs or btrfs")
	f.StringSliceVar(&o.Devs, "devs", nil, "DEVS: block devices, or files used through loop devices")
	f.StringVar(&o.MountPath, "mount-path", "", "CONTAINER_ROOT_LV_MOUNT_PATH (default: the graph root)")
	f.StringVar(&o.Size, "size", "", "CONTAINER_ROOT_LV_SIZE: 40%FREE or an absolute size such as 20G")
	f.BoolVar(&o.GrowPart, "growpart", false, "GROWPART: grow the filesystem to fill its device")
	f.BoolVar(&o.WipeSignatures, "wipe-signatures", false, "WIPE_SIGNATURES: wipe a device that holds a filesystem or partition table")
	f.StringVar(&o.ExtraOptions, "extra-storage-options", "", `EXTRA_STORAGE_OPTIONS, e.g. "--storage-opt overlay.size=10G"`)
	f.StringVar(&o.VG, "vg", "", "VG: LVM volume group (needs device-mapper)")
	f.StringVar(&o.LVName, "lv-name", "", "CONTAINER_ROOT_LV_NAME: LVM logical volume")
	f.StringVar(&o.Fstab, "fstab", "/etc/fstab", "the fstab to persist the mount in where systemd is not running")
	f.StringVar(&o.UnitDir, "systemd-unit-dir", "/etc/systemd/system", "where to write the mount unit where systemd runs")
	f.StringVar(&o.Systemd, "systemd", "auto", "persist with a systemd mount unit: auto, true or false")
	for _, n := range []string{"fstab", "systemd-unit-dir", "systemd"} {
		_ = f.MarkHidden(n)
	}
	return cmd
}

// setupConfig reads the files, then the flags that were given.
func setupConfig(cmd *cobra.Command, o storageSetupOptions) (storagesetup.SetupConfig, error) {
	var c storagesetup.SetupConfig
	if err := c.ReadSetupFile(o.SetupFile, !cmd.Flags().Changed("setup-file")); err != nil {
		return c, err
	}
	if o.Config != "" {
		if err := c.ReadSetupFile(o.Config, false); err != nil {
			return c, err
		}
	}
	flags := map[string]string{
		"driver": "STORAGE_DRIVER", "devs": "DEVS", "mount-path": "CONTAINER_ROOT_LV_MOUNT_PATH",
		"size": "CONTAINER_ROOT_LV_SIZE", "growpart": "GROWPART", "wipe-signatures": "WIPE_SIGNATURES",
		"extra-storage-options": "EXTRA_STORAGE_OPTIONS", "vg": "VG", "lv-name": "CONTAINER_ROOT_LV_NAME",
	}
	values := map[string]string{
		"driver": o.Driver, "devs": strings.Join(o.Devs, " "), "mount-path": o.MountPath, "size": o.Size,
		"growpart": strconv.FormatBool(o.GrowPart), "wipe-signatures": strconv.FormatBool(o.WipeSignatures),
		"extra-storage-options": o.ExtraOptions, "vg": o.VG, "lv-name": o.LVName,
	}
	for flag, key := range flags {
		if cmd.Flags().Changed(flag) {
			if err := c.Set(key, values[flag]); err != nil {
				return c, fmt.Errorf("--%s: %w", flag, err)
			}
		}
	}
	return c, nil
}

func runStorageSetup(cmd *cobra.Command, o storageSetupOptions) error {
	ctx := cmd.Context()
	c, err := setupConfig(cmd, o)
	if err != nil {
		return err
	}
	s, err := storageconf.Resolve(storageconf.Overrides{ConfigPath: globals.StorageConf, Root: globals.Root, RunRoot: globals.RunRoot})
	if err != nil {
		return err
	}
	host := storagesetup.DetectHost()
	switch o.Systemd {
	case "true":
		host.Systemd, host.RunSystemctl = true, false
	case "false":
		host.Systemd, host.RunSystemctl = false, false
	case "auto":
	default:
		return usageErrorf("--systemd %q: want auto, true or false", o.Systemd)
	}
	req := storagesetup.Request{
		Config: c, Host: host, Root: s.Root, RunRoot: s.RunRoot,
		Paths: storagesetup.Paths{StorageConf: s.ConfigPath, Fstab: o.Fstab, UnitDir: o.UnitDir},
	}
	plan, err := storagesetup.MakePlan(ctx, req)
	if err != nil {
		return err
	}
	out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
	for _, w := range plan.Warnings {
		fmt.Fprintln(errw, "warning:", w)
	}
	if o.DryRun {
		fmt.Fprintf(out, "Plan for driver %s on %s:\n", plan.Driver, plan.MountPath)
		for _, st := range plan.Steps {
			mark := "change"
			if st.Done {
				mark = "ok    "
			}
			fmt.Fprintf(out, "  [%s] %s\n", mark, st.Summary)
		}
		fmt.Fprintf(out, "dry run: %d change(s) planned, nothing changed\n", plan.Changes())
		return nil
	}
	if plan.Changes() == 0 {
		fmt.Fprintf(out, "nothing to change: storage is already set up (driver %s on %s)\n", plan.Driver, plan.MountPath)
		return nil
	}
	err = plan.Apply(ctx, func(st storagesetup.Step) { fmt.Fprintln(out, "=>", st.Summary) })
	if err != nil {
		return fmt.Errorf("setting up storage: %w", err)
	}
	fmt.Fprintf(out, "storage is set up: driver %s on %s (%d change(s))\n", plan.Driver, plan.MountPath, plan.Changes())
	return nil
}
