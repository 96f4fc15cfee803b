package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// outputCapture holds back what this process (and any child) writes to
// stdout and stderr until it is replayed or dropped: a verb a rootless
// kiln tries as the user first (rootless.go) shows its output only if it
// is the run that counts. One goroutine reads both pipes as data arrives,
// stdout first when both have some, so that the replay keeps the order
// of the lines as far as a reader of both can tell.
type outputCapture struct {
	saved  [2]int // the real stdout and stderr
	reads  [2]int // the pipes' read ends
	writes [2]int // the pipes' write ends (also dup'ed onto fds 1 and 2)
	done   chan struct{}
	mu     sync.Mutex
	chunks []outputChunk
	closed bool // restored: later reads are dropped
}

type outputChunk struct {
	fd   int
	data []byte
}

// captureOutput points fds 1 and 2 at pipes that this process reads.
func captureOutput() (*outputCapture, error) {
	c := &outputCapture{saved: [2]int{-1, -1}, reads: [2]int{-1, -1}, writes: [2]int{-1, -1}}
	for i, fd := range []int{1, 2} {
		var p [2]int
		err := unix.Pipe2(p[:], unix.O_CLOEXEC)
		if err == nil {
			c.reads[i], c.writes[i] = p[0], p[1]
			c.saved[i], err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		}
		if err == nil {
			err = unix.Dup3(c.writes[i], fd, 0)
		}
		if err != nil {
			c.restore()
			c.closeReads()
			return nil, fmt.Errorf("holding back output: %w", err)
		}
	}
	c.done = make(chan struct{}) // restore waits for the reader from now on
	go c.read()
	return c, nil
}

// read reads both pipes until both are closed by every writer.
func (c *outputCapture) read() {
	defer close(c.done)
	defer c.closeReads()
	buf := make([]byte, 32<<10)
	open := [2]bool{true, true}
	for open[0] || open[1] {
		var pfds []unix.PollFd
		for i, ok := range open {
			if ok {
				pfds = append(pfds, unix.PollFd{Fd: int32(c.reads[i]), Events: unix.POLLIN})
			}
		}
		if _, err := unix.Poll(pfds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, pfd := range pfds {
			if pfd.Revents == 0 {
				continue
			}
			i := 0
			if int(pfd.Fd) == c.reads[1] {
				i = 1
			}
			n, err := unix.Read(c.reads[i], buf)
			if n > 0 {
				c.mu.Lock()
				if !c.closed {
					c.chunks = append(c.chunks, outputChunk{fd: i + 1, data: append([]byte(nil), buf[:n]...)})
				}
				c.mu.Unlock()
			}
			if n == 0 || err != nil && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
				open[i] = false
			}
		}
	}
}

func (c *outputCapture) closeReads() {
	for i := range c.reads {
		if c.reads[i] >= 0 {
			unix.Close(c.reads[i])
			c.reads[i] = -1
		}
	}
}

// restore points fds 1 and 2 back at the real stdout and stderr and
// waits until everything written before is read: until the pipes' last
// writers are gone, or for a second when a process this one started
// still holds them.
func (c *outputCapture) restore() {
	for i, fd := range []int{1, 2} {
		if c.saved[i] >= 0 {
			_ = unix.Dup3(c.saved[i], fd, 0)
			unix.Close(c.saved[i])
			c.saved[i] = -1
		}
		if c.writes[i] >= 0 {
			unix.Close(c.writes[i])
			c.writes[i] = -1
		}
	}
	if c.done != nil {
		select {
		case <-c.done:
		case <-time.After(time.Second):
		}
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// replay restores fds 1 and 2 and writes what was held back to them.
func (c *outputCapture) replay() error {
	c.restore()
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, ch := range c.chunks {
		f := os.Stdout
		if ch.fd == 2 {
			f = os.Stderr
		}
		if _, err := f.Write(ch.data); err != nil {
			errs = append(errs, err)
		}
	}
	c.chunks = nil
	return errors.Join(errs...)
}

// drop restores fds 1 and 2 and forgets what was held back.
func (c *outputCapture) drop() {
	c.restore()
	c.mu.Lock()
	c.chunks = nil
	c.mu.Unlock()
}
