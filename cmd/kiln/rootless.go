package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/idmap"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/storageconf"
)

// outsideUserNamespace lists the verbs a rootless kiln runs as the user
// itself: they touch no store (mount is decided in enterUserNamespace).
var outsideUserNamespace = map[string]bool{"version": true, "help": true, "login": true, "logout": true}

// enterUserNamespace re-executes a rootless kiln, before anything touches
// the store, in a user and mount namespace of its own (internal/idmap)
// and returns an exitError carrying the status of that run, for main to
// exit with. As root, inside the namespace already (euid 0 there), and
// for the verbs that need no store, it returns nil and the verb runs
// here.
func enterUserNamespace(cmd *cobra.Command, args []string) error {
	if os.Geteuid() == 0 || outsideUserNamespace[cmd.Name()] {
		return nil
	}
	// A mount made by a namespace that ends with the command would be
	// gone before the caller could use it: Buildah's rule and message.
	if cmd.Name() == "mount" && cmd.Parent() == cmd.Root() && len(args) > 0 {
		s, err := storageconf.Resolve(storageconf.Overrides{
			ConfigPath: globals.StorageConf, Root: globals.Root, RunRoot: globals.RunRoot,
			Driver: globals.StorageDriver, Opts: globals.StorageOpts,
		})
		if err != nil {
			return err
		}
		if driver, err := storageconf.NormalizeDriver(s.Driver); err == nil && driver != "vfs" {
			return fmt.Errorf("cannot mount using driver %s in rootless mode. You need to run it in a `kiln unshare` session", driver)
		}
	}
	p, err := idmap.PlanFor(uint32(os.Getuid()), uint32(os.Getgid()), idmap.SubUIDFile, idmap.SubGIDFile)
	if err != nil {
		return err
	}
	if p.Note != "" {
		logger.Warn(p.Note)
	}
	if tryAsUser(cmd, args, p) {
		return nil
	}
	return enterPlanned(cmd.Context(), p)
}

// enterPlanned runs this command line again in the user namespace p
// plans and returns an exitError with its status.
func enterPlanned(ctx context.Context, p idmap.Plan) error {
	code, err := idmap.Enter(ctx, p, os.Args, os.Environ())
	return &exitError{code: code, err: err}
}

// asUserFirst lists the verbs a rootless kiln runs first as the user
// itself, outside its user namespace. Entering the namespace costs two
// process starts and the setuid ID mappers, as much again as a short
// command; these verbs often need nothing only the namespace can do:
// reading the store, tagging, a build whose every step is cached or
// whose COPY layers exist only as blobs. They run with the store's
// snapshots read-only (store.Options.SnapshotsReadOnly) and their output
// held back; the first thing that needs the namespace (a RUN, a mount, a
// pull, recovery after a killed process) fails, and then the output is
// dropped and the whole command runs again in the namespace, finding
// what the first run stored. Whatever the first run did is what the
// second would have done first.
var asUserFirst = map[string]bool{"build": true, "images": true, "inspect": true, "containers": true, "tag": true}

// userAttempt is the run of a verb as the user (asUserFirst).
type userAttempt struct {
	plan idmap.Plan
	out  *outputCapture
}

// attempt is this process's userAttempt, nil when there is none.
var attempt *userAttempt

// tryAsUser starts a userAttempt when cmd is one of asUserFirst and a
// second run would do nothing twice: it reads nothing that cannot be read
// again (stdin, a pipe or FIFO named as a file, a git or URL context) and
// sends nothing out that a first run might send before it fails (an
// --output, a cache pushed or pulled, a tag in another transport, a
// --logfile).
func tryAsUser(cmd *cobra.Command, args []string, p idmap.Plan) bool {
	if !asUserFirst[cmd.Name()] || cmd.Parent() != cmd.Root() || os.Getenv("KILN_USERNS_ALWAYS") != "" {
		return false
	}
	for _, f := range []string{"output", "cache-to", "cache-from", "logfile"} {
		if fl := cmd.Flags().Lookup(f); fl != nil && fl.Changed {
			return false
		}
	}
	if fl := cmd.Flags().Lookup("tag"); fl != nil {
		if tags, err := cmd.Flags().GetStringArray("tag"); err == nil && slices.ContainsFunc(tags, func(t string) bool { return images.IsTransportRef(t) || strings.Contains(t, "://") }) {
			return false
		}
	}
	if cmd.Name() == "build" && len(args) > 0 && dockerfile.IsFetched(args[0]) {
		return false
	}
	if slices.ContainsFunc(os.Args[1:], readOnce) {
		return false
	}
	if !idmap.Assume(idmap.IDMap{UIDs: p.UIDs, GIDs: p.GIDs}) {
		return false
	}
	out, err := captureOutput()
	if err != nil {
		logger.Debug("running in the user namespace", "reason", err)
		return false
	}
	attempt = &userAttempt{plan: p, out: out}
	logger.Debug("running as the user, outside the user namespace, until something needs it")
	return true
}

// readOnce reports whether a command-line argument names something that
// cannot be read twice: stdin ("-"), a descriptor, or, in any of its
// "=" or "," separated parts, a file that is a pipe, FIFO, socket or
// device.
func readOnce(arg string) bool {
	if arg == "-" || strings.HasSuffix(arg, "=-") {
		return true
	}
	for _, part := range strings.FieldsFunc(arg, func(r rune) bool { return r == '=' || r == ',' }) {
		if strings.HasPrefix(part, "/dev/") || strings.HasPrefix(part, "/proc/") {
			return true
		}
		if !strings.ContainsRune(part, '/') {
			continue
		}
		if fi, err := os.Stat(part); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
			return true
		}
	}
	return false
}

// finish ends the attempt with the verb's result: its output is shown
// and err returned when it succeeded or was interrupted; otherwise the
// command runs again in the namespace and that run's result counts.
func (a *userAttempt) finish(err error) error {
	var ee *exitError
	interrupted := errors.As(err, &ee) && (ee.code == 130 || ee.code == exitBrokenPipe)
	if err == nil || interrupted {
		_ = a.out.replay()
		return err
	}
	a.out.drop()
	logger.Debug("running in the user namespace", "reason", err)
	return enterPlanned(context.Background(), a.plan)
}
