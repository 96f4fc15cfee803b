package main

import (
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// globalOptions are the flags every verb accepts, named as Buildah names
// them so that scripts written for Buildah keep working.
type globalOptions struct {
	Root               string
	RunRoot            string
	StorageDriver      string
	StorageOpts        []string
	RegistriesConf     string
	RegistriesConfDir  string
	ShortNameAliasConf string
	LogLevel           string
	StorageConf        string
	UserNSUIDMap       []string
	UserNSGIDMap       []string
	DefaultMountsFile  string
	CgroupManager      string
	Debug              bool
}

var globals globalOptions

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "kiln",
		Short:         "A daemonless container-image builder and local image store",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := setupLogging(globals.LogLevel, globals.Debug); err != nil {
				return err
			}
			if err := refuseGlobals(); err != nil {
				return err
			}
			return enterUserNamespace(cmd, args)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	// --version, as Buildah's: "NAME version VERSION" (the version is the
	// third word, where scripts read it).
	root.Version = version
	root.SetVersionTemplate("{{.Name}} version {{.Version}}\n")
	f := root.PersistentFlags()
	f.StringVar(&globals.Root, "root", "", "storage root directory (default /var/lib/kiln)")
	f.StringVar(&globals.RunRoot, "runroot", "", "storage state directory (default /run/kiln)")
	f.StringVar(&globals.StorageDriver, "storage-driver", "", "storage driver: overlay, vfs or btrfs")
	f.StringArrayVar(&globals.StorageOpts, "storage-opt", nil, "storage driver option")
	f.StringVar(&globals.RegistriesConf, "registries-conf", "", "path to registries.conf")
	f.StringVar(&globals.RegistriesConfDir, "registries-conf-dir", "", "directory of registries.conf.d files")
	f.StringVar(&globals.ShortNameAliasConf, "short-name-alias-conf", "", "path to the short-name alias cache")
	f.StringVar(&globals.LogLevel, "log-level", "warn", "log level: trace, debug, info, warn, error, fatal or panic")
	f.StringVar(&globals.StorageConf, "storage-conf", "", "path to storage.conf (default /etc/kiln/storage.conf)")
	f.StringSliceVar(&globals.UserNSUIDMap, "userns-uid-map", nil, "default uid mapping (not supported)")
	f.StringSliceVar(&globals.UserNSGIDMap, "userns-gid-map", nil, "default gid mapping (not supported)")
	f.StringVar(&globals.DefaultMountsFile, "default-mounts-file", "", "file of mounts for every run (not supported)")
	f.StringVar(&globals.CgroupManager, "cgroup-manager", "", "cgroup manager: cgroupfs, the one kiln's runs use (systemd is not supported)")
	f.BoolVar(&globals.Debug, "debug", false, "print debugging information")
	for _, name := range []string{"userns-uid-map", "userns-gid-map", "default-mounts-file", "cgroup-manager", "storage-conf"} {
		_ = f.MarkHidden(name)
	}

	for _, add := range commands {
		root.AddCommand(add())
	}
	return root
}

// commands lists the constructors of the verbs; each verb's file adds
// itself in an init function so that verbs stay one file each.
var commands []func() *cobra.Command

func register(newCmd func() *cobra.Command) { commands = append(commands, newCmd) }

// logger is the logger verbs hand to library packages.
var logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func setupLogging(level string, debug bool) error {
	var l slog.Level
	switch strings.ToLower(level) {
	case "trace", "debug":
		l = slog.LevelDebug
	case "info":
		l = slog.LevelInfo
	case "warn", "warning", "":
		l = slog.LevelWarn
	case "error", "fatal", "panic":
		l = slog.LevelError
	default:
		return usageErrorf("unknown --log-level %q: use trace, debug, info, warn, error, fatal or panic", level)
	}
	if debug {
		l = slog.LevelDebug
	}
	logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	return nil
}

// refuseGlobals fails on the global flags Buildah has that kiln accepts
// only with the meaning kiln has (exit 125, naming the flag).
func refuseGlobals() error {
	switch {
	case len(globals.UserNSUIDMap) > 0 || len(globals.UserNSGIDMap) > 0:
		return usageErrorf("--userns-uid-map, --userns-gid-map: not supported by kiln: it runs in the host's user namespace, or rootless in one made from /etc/subuid and /etc/subgid")
	case globals.DefaultMountsFile != "":
		return usageErrorf("--default-mounts-file: not supported by kiln: give each run its mounts with -v")
	case globals.CgroupManager != "" && globals.CgroupManager != "cgroupfs":
		return usageErrorf("--cgroup-manager %q: not supported by kiln: its runs use cgroupfs", globals.CgroupManager)
	}
	return nil
}
