package run

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// forwarded are the signals kiln relays to the process it runs.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// catchSignals starts catching the forwarded signals. Call it before the
// child is started: a signal kiln ignores (the CLI ignores SIGINT while it
// runs a process; a shell ignores it for background jobs) would otherwise
// be ignored by the child and everything it starts, so Ctrl-C would not
// stop the command. Go resets caught signals to their default in a child.
func catchSignals() chan os.Signal {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, forwarded...)
	return ch
}

// forwardSignals relays the signals arriving on ch (from catchSignals) to
// proc, and calls kill once when ctx ends. The returned function stops
// both and stops catching.
func forwardSignals(ctx context.Context, ch chan os.Signal, proc *os.Process, kill func()) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case s := <-ch:
				_ = proc.Signal(s)
			case <-ctx.Done():
				kill()
				<-done
				return
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
		<-finished
	}
}
