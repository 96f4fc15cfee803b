package run

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// forwardSignals relays SIGINT, SIGTERM, SIGHUP and SIGQUIT received by
// kiln to proc, and calls kill once when ctx ends. The returned function
// stops both.
func forwardSignals(ctx context.Context, proc *os.Process, kill func()) (stop func()) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
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
