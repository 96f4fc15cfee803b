// Command kiln is a daemonless container-image builder and local image store.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kiln-build/kiln/internal/idmap"
	"github.com/kiln-build/kiln/internal/run"
)

func main() {
	// A rootless kiln re-executed into its user namespace waits here for
	// its ID mappings (internal/idmap, cmd/kiln/rootless.go).
	if err := idmap.Init(); err != nil {
		if !errors.Is(err, idmap.ErrAborted) {
			fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		}
		os.Exit(125)
	}
	// The chroot isolation re-executes this binary as the init of a new
	// set of namespaces; that child never reaches the command line.
	if run.IsReexec() {
		os.Exit(run.Reexec())
	}
	// A stdout or stderr that is closed (a log collector restarted,
	// `| head -1`) must not kill kiln in the middle of a write to the
	// store: with SIGPIPE caught, a write to it fails with EPIPE instead,
	// the work finishes (or rolls back) as it would, and kiln exits 141
	// as a process killed by SIGPIPE would, so pipelines still see it.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	stop := startProfiles()
	code := execute(os.Args[1:])
	stop()
	select {
	case <-sigpipe:
		if code == 0 {
			code = exitBrokenPipe
		}
	default:
	}
	os.Exit(code)
}

// exitBrokenPipe is the status of a run whose output could not be
// written: 128 + SIGPIPE, what a shell reports for a process SIGPIPE
// killed.
const exitBrokenPipe = 128 + int(syscall.SIGPIPE)

// exitError carries an exit status other than the default 125 up to main,
// for errors whose status is documented (a process's own exit code, 126, 127).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// execute runs the command line and returns the process exit status:
// 0 on success, the carried code of an exitError, and 125 for every
// other error, as Buildah does.
func execute(args []string) int {
	defer func() {
		// A panic in a run as the user (rootless.go) must reach stderr.
		if a := attempt; a != nil {
			if r := recover(); r != nil {
				attempt = nil
				_ = a.out.replay()
				panic(r)
			}
		}
	}()
	root := newRootCommand()
	root.SetArgs(args)
	err := root.Execute()
	if a := attempt; a != nil {
		attempt = nil
		err = a.finish(err)
	}
	if err == nil {
		return 0
	}
	err = fullDisk(err)
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(os.Stderr, "Error: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "Error: %v\n", err)
	return 125
}
