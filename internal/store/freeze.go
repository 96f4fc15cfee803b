package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrStoreFrozen: another kiln process (a storage export or migration)
// keeps writers out of the store, and the wait for it timed out.
var ErrStoreFrozen = errors.New("store is locked for an export or migration")

// DefaultLockTimeout is how long a writer waits for a frozen store
// (storage option lock_timeout).
const DefaultLockTimeout = 10 * time.Minute

// freezeLockName is the lock file in the store root. Every write
// transaction and every commit holds a shared flock on it; Freeze holds
// it exclusively and writes who froze the store into it. The kernel
// drops the lock of a dead process, so a lockout never outlives it.
const freezeLockName = "freeze.lock"

// gate is this process's side of the writer lockout. Its shared lock is
// counted: taken by the first writer of the process, dropped by the
// last, so nested holds (a commit's transactions) cost nothing.
type gate struct {
	path    string
	timeout time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	f      *os.File // holds the shared lock while holds > 0
	holds  int
	frozen *os.File // holds the exclusive lock: this process froze the store
}

func newGate(root string, opts map[string]string, log *slog.Logger) (*gate, error) {
	g := &gate{path: filepath.Join(root, freezeLockName), timeout: DefaultLockTimeout, log: log}
	if v := opts["lock_timeout"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("bad lock_timeout %q: want a duration such as 10m", v)
		}
		g.timeout = d
	}
	return g, nil
}

func (g *gate) open() (*os.File, error) {
	return os.OpenFile(g.path, os.O_RDWR|os.O_CREATE, 0o600)
}

// enter takes the shared lock (a write may start), waiting while another
// process holds the store frozen: it says so once, and gives up with
// ErrStoreFrozen after the timeout.
func (g *gate) enter(ctx context.Context) error {
	deadline := time.Now().Add(g.timeout)
	told := false
	for {
		ok, err := g.tryEnter()
		if ok || err != nil {
			return err
		}
		note := g.note()
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s held it for longer than lock_timeout=%s: wait for it to finish and retry (a migration killed half way is finished by running `kiln storage migrate` again)", ErrStoreFrozen, note, g.timeout)
		}
		if !told {
			g.log.Warn("waiting for the store to be unlocked: "+note, "timeout", g.timeout.String())
			told = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (g *gate) tryEnter() (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.frozen != nil || g.holds > 0 {
		g.holds++
		return true, nil
	}
	if g.f == nil {
		f, err := g.open()
		if err != nil {
			return false, fmt.Errorf("opening the store lock: %w", err)
		}
		g.f = f
	}
	err := unix.Flock(int(g.f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("locking the store: %w", err)
	}
	g.holds = 1
	return true, nil
}

// leave drops one hold; the last one releases the shared lock.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holds--; g.holds == 0 && g.f != nil {
		_ = unix.Flock(int(g.f.Fd()), unix.LOCK_UN)
	}
}

// note says who holds the store frozen, as Freeze wrote it.
func (g *gate) note() string {
	b, _ := os.ReadFile(g.path)
	if s := strings.TrimSpace(string(b)); s != "" {
		return s
	}
	return "another kiln process"
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, f := range []*os.File{g.f, g.frozen} {
		if f != nil {
			f.Close()
		}
	}
	g.f, g.frozen = nil, nil
}

// freeze takes the exclusive lock once every writer of other processes
// has left (bounded by the timeout), and records who holds it.
func (g *gate) freeze(ctx context.Context, who string) (func(), error) {
	f, err := g.open()
	if err != nil {
		return nil, fmt.Errorf("opening the store lock: %w", err)
	}
	deadline := time.Now().Add(g.timeout)
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("waiting for other kiln writers to finish: %w", errors.Join(err, ErrStoreFrozen))
		}
		if !told {
			g.log.Warn("waiting for other kiln writers (commits, pulls, removals) to finish", "timeout", g.timeout.String())
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	note := fmt.Sprintf("%s (pid %d, since %s)", who, os.Getpid(), time.Now().Format(time.RFC3339))
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(note+"\n"), 0)
	g.mu.Lock()
	g.frozen = f
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		_ = f.Truncate(0)
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
		if g.frozen == f {
			g.frozen = nil
		}
	}, nil
}

// holdWriters keeps the store from being frozen until release is
// called: for work that spans several transactions and moves files a
// consistent export must not see half moved (a commit).
func (s *Store) holdWriters(ctx context.Context) (release func(), err error) {
	if err := s.db.gate.enter(ctx); err != nil {
		return nil, err
	}
	return s.db.gate.leave, nil
}
