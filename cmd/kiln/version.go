package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time with -X main.version=…
var version = "0.1.0-dev"

func init() { register(newVersionCommand) }

func newVersionCommand() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print version information",
		RunE: func(cmd *cobra.Command, args []string) error {
			v := map[string]string{
				"version": version, "goVersion": runtime.Version(),
				"os/arch": runtime.GOOS + "/" + runtime.GOARCH, "buildPlatform": runtime.GOOS + "/" + runtime.GOARCH,
			}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v["gitCommit"] = s.Value
					}
				}
			}
			if jsonOut {
				return printJSON(cmd.OutOrStdout(), v)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Version:         %s\n", v["version"])
			fmt.Fprintf(out, "Go Version:      %s\n", v["goVersion"])
			fmt.Fprintf(out, "Git Commit:      %s\n", v["gitCommit"])
			fmt.Fprintf(out, "OS/Arch:         %s\n", v["os/arch"])
			fmt.Fprintf(out, "BuildPlatform:   %s\n", v["buildPlatform"])
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "output in JSON format")
	return cmd
}
