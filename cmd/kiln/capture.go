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
// stdout and stderr, in order, until it is replayed or dropped: a verb a
// rootless kiln tries as the user first (rootless.go) shows its output
// only if it is the run that counts.
type outputCapture struct {
	saved  [2]int      // the real stdout and stderr
	writes [2]*os.File // the pipes' write ends, now also fds 1 and 2
	wg     sync.WaitGroup
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
	c := &outputCapture{saved: [2]int{-1, -1}}
	for i, fd := range []int{1, 2} {
		r, w, err := os.Pipe()
		if err == nil {
			c.saved[i], err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
			if err == nil {
				err = unix.Dup3(int(w.Fd()), fd, 0)
			}
		}
		if err != nil {
			if r != nil {
				r.Close()
				w.Close()
			}
			c.restore()
			return nil, fmt.Errorf("holding back output: %w", err)
		}
		c.writes[i] = w
		c.wg.Add(1)
		go c.read(fd, r)
	}
	return c, nil
}

func (c *outputCapture) read(fd int, r *os.File) {
	defer c.wg.Done()
	defer r.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.mu.Lock()
			if !c.closed {
				c.chunks = append(c.chunks, outputChunk{fd: fd, data: append([]byte(nil), buf[:n]...)})
			}
			c.mu.Unlock()
		}
		if err != nil {
			return
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
		if c.writes[i] != nil {
			c.writes[i].Close()
			c.writes[i] = nil
		}
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
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
