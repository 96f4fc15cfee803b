package main

import (
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
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			imgs, err := st.Images(ctx)
			if err != nil {
				return err
			}
			ctrs, err := st.Containers(ctx)
			if err != nil {
				return err
			}
			status := map[string]string{}
			for _, kv := range st.Driver().Status() {
				status[kv[0]] = kv[1]
			}
			var fs unix.Statfs_t
			_ = unix.Statfs(st.Root(), &fs)
			hostname, _ := os.Hostname()
			info := map[string]any{
				"host": map[string]any{
					"os": runtime.GOOS, "arch": runtime.GOARCH, "cpus": runtime.NumCPU(), "hostname": hostname,
					"kernel": kernelRelease(),
				},
				"store": map[string]any{
					"GraphDriverName": st.Driver().Name(), "GraphRoot": st.Root(), "RunRoot": st.RunRoot(),
					"GraphStatus": status, "ImageStore": map[string]int{"number": len(imgs)},
					"ContainerStore":     map[string]int{"number": len(ctrs)},
					"DataSpaceTotal":     int64(fs.Blocks) * fs.Bsize,
					"DataSpaceAvailable": int64(fs.Bavail) * fs.Bsize,
				},
			}
			if format == "" {
				format = "json"
			}
			return render(cmd.OutOrStdout(), format, []any{info}, true)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "format the output with a Go template")
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
