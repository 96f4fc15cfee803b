package run

import (
	"context"
	"errors"
	"fmt"
)

// Run runs o.Args in o.Rootfs with the isolation o.Isolation selects and
// waits for it. When the process ran, Run returns its exit status (128+n
// when a signal ended it) and a nil error. Otherwise the error wraps
// ErrNotFound, ErrNotExecutable or another cause and the status is 127,
// 126 or 125. SIGINT, SIGTERM, SIGHUP and SIGQUIT that kiln receives while
// Run waits are forwarded to the process; cancelling ctx kills it. Run is
// safe for concurrent use with distinct RunDirs or a shared one.
func Run(ctx context.Context, o Options) (exitCode int, err error) {
	p, err := prepare(o)
	if err != nil {
		return statusFor(err), err
	}
	defer func() {
		if cerr := p.cleanup(); cerr != nil && err == nil {
			err = fmt.Errorf("cleaning up after the run: %w", cerr)
		}
	}()
	switch o.Isolation {
	case IsolationChroot:
		exitCode, err = runChroot(ctx, p)
	default:
		exitCode, err = runOCI(ctx, p)
	}
	if err != nil && exitCode == 0 {
		exitCode = statusFor(err)
	}
	return exitCode, err
}

// statusFor maps an error to Docker's and Buildah's exit statuses.
func statusFor(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return 127
	case errors.Is(err, ErrNotExecutable):
		return 126
	}
	return 125
}
