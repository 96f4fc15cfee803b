package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/internal/run"
)

func init() { register(newInfoCommand) }

func newInfoCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Describe the host and the store",
		RunE: func(cmd *cobra.Command, args []string) error {
			si, err := gatherStorageInfo(cmd.Context())
			if err != nil {
				return err
			}
			hostname, _ := os.Hostname()
			host := hostInfo(hostname)
			out := cmd.OutOrStdout()
			if format == "" {
				fmt.Fprintf(out, "Host: %s %s/%s, kernel %s, %d CPUs\n", hostname, runtime.GOOS, runtime.GOARCH, kernelRelease(), runtime.NumCPU())
				printStorageInfo(out, si)
				return nil
			}
			storeMap, err := si.asMap()
			if err != nil {
				return err
			}
			if _, ok := storeMap["GraphOptions"]; !ok {
				storeMap["GraphOptions"] = append([]string{}, globals.StorageOpts...)
			}
			return render(out, format, []any{map[string]any{"host": host, "store": storeMap}}, true)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "json, or a Go template such as '{{.store.GraphDriverName}}'")
	cmd.Flags().Bool("debug", false, "accepted for compatibility")
	return cmd
}

// hostInfo is the "host" object of Buildah's info, key for key, so that
// templates written for Buildah ({{.host.OCIRuntime}}) read the same.
func hostInfo(hostname string) map[string]any {
	host := map[string]any{
		"os": runtime.GOOS, "arch": runtime.GOARCH, "cpus": runtime.NumCPU(), "hostname": hostname,
		"kernel": kernelRelease(), "OCIRuntime": run.RuntimeName(), "rootless": os.Geteuid() != 0,
		"variant": archVariant(), "CgroupVersion": "v1", "Distribution": distribution(),
	}
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		host["CgroupVersion"] = "v2"
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		unit := uint64(si.Unit)
		host["MemTotal"], host["MemFree"] = si.Totalram*unit, si.Freeram*unit
		host["SwapTotal"], host["SwapFree"] = si.Totalswap*unit, si.Freeswap*unit
		up := time.Duration(si.Uptime) * time.Second
		host["uptime"] = fmt.Sprintf("%s (Approximately %.2f days)", up, up.Hours()/24)
	}
	return host
}

// distribution reads ID and VERSION_ID from /etc/os-release.
func distribution() map[string]string {
	d := map[string]string{"distribution": "", "version": ""}
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return d
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			d["distribution"] = v
		case "VERSION_ID":
			d["version"] = v
		}
	}
	return d
}

// archVariant is the CPU variant of this machine's architecture, as image
// platforms name it ("v8" on arm64, "" on amd64).
func archVariant() string {
	if runtime.GOARCH == "arm64" {
		return "v8"
	}
	return ""
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
