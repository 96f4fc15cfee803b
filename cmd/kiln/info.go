package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
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
			host := map[string]any{
				"os": runtime.GOOS, "arch": runtime.GOARCH, "cpus": runtime.NumCPU(), "hostname": hostname,
				"kernel": kernelRelease(),
			}
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
			return render(out, format, []any{map[string]any{"host": host, "store": storeMap}}, true)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "json, or a Go template such as '{{.store.GraphDriverName}}'")
	cmd.Flags().Bool("debug", false, "accepted for compatibility")
	return cmd
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
