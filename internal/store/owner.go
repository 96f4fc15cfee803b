package store

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Liveness. Work in progress is recorded with the token of the process
// doing it (owner columns, holds, pending blobs, temp file names), and a
// process is alive exactly while it holds the flock of its own lock file
// ROOT/procs/TOKEN: the kernel drops the lock when the process dies,
// however it dies. Pids mean nothing here: a kiln in a build container
// and a kiln on the host share one store from different PID namespaces,
// and a store on a shared volume may be used from several hosts.

// owner is this process's token: random, so never reused.
var owner = newToken()

func newToken() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "k" + hex.EncodeToString(b[:])
}

// procLock is this process's lock file in one store, shared by every
// Store of this process open on that root.
type procLock struct {
	f    *os.File
	name string
	refs int
}

var (
	procLocksMu sync.Mutex
	procLocks   = map[string]*procLock{}
)

func procsDir(root string) string { return filepath.Join(root, "procs") }

// lockProcess takes this process's lock file in root (see owner).
func lockProcess(root string) error {
	procLocksMu.Lock()
	defer procLocksMu.Unlock()
	if l := procLocks[root]; l != nil {
		l.refs++
		return nil
	}
	if err := os.MkdirAll(procsDir(root), 0o700); err != nil {
		return fmt.Errorf("creating the store's process directory: %w", err)
	}
	// The file gets its name only once locked, so that a file named by a
	// token is never seen unlocked while its process lives.
	tmp := filepath.Join(procsDir(root), ".tmp-"+owner)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating this process's lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("locking this process's lock file: %w", err)
	}
	// For people reading the directory: which process this is.
	host, _ := os.Hostname()
	fmt.Fprintf(f, "pid %d on %s\n", os.Getpid(), host)
	name := filepath.Join(procsDir(root), owner)
	if err := os.Rename(tmp, name); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("naming this process's lock file: %w", err)
	}
	procLocks[root] = &procLock{f: f, name: name, refs: 1}
	return nil
}

// unlockProcess releases this process's lock file in root once no Store
// of this process uses it.
func unlockProcess(root string) {
	procLocksMu.Lock()
	defer procLocksMu.Unlock()
	l := procLocks[root]
	if l == nil {
		return
	}
	if l.refs--; l.refs > 0 {
		return
	}
	delete(procLocks, root)
	_ = os.Remove(l.name)
	l.f.Close()
}

// alive reports whether the process that wrote token still runs.
func (s *Store) alive(token string) bool {
	switch {
	case token == owner:
		return true
	case token == "":
		return false
	case strings.Contains(token, ":"):
		return legacyAlive(token)
	}
	if strings.Contains(token, "/") || strings.HasPrefix(token, ".") {
		return false // never a process's file ("."-names are being made)
	}
	f, err := os.OpenFile(filepath.Join(procsDir(s.root), token), os.O_RDWR, 0)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true
	}
	if err == nil {
		// Its process is gone: the file is only a leftover now.
		_ = os.Remove(f.Name())
	}
	return false
}

// removeDeadLockFiles removes the lock files of processes that are gone.
func (s *Store) removeDeadLockFiles() {
	entries, err := os.ReadDir(procsDir(s.root))
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			// Another process's file between its creation and its lock
			// and rename (lockProcess): only one left by a crash there,
			// old and unlocked, is removed.
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Minute {
				s.removeIfUnlocked(filepath.Join(procsDir(s.root), e.Name()))
			}
			continue
		}
		s.alive(e.Name()) // removes the file of a dead process
	}
}

// removeIfUnlocked removes the lock file at path when no process holds
// its lock.
func (s *Store) removeIfUnlocked(path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		_ = os.Remove(path)
	}
}

// legacyAlive judges a token of kiln's first releases, pid:starttime,
// from /proc (those processes can only have run in this PID namespace).
func legacyAlive(token string) bool {
	pidStr, start, _ := strings.Cut(token, ":")
	pid, err := strconv.Atoi(pidStr)
	if err != nil {
		return false
	}
	st := startTime(pid)
	return st != "" && st == start
}

func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name may hold spaces; fields resume after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// tmpPrefix names temp files so that recovery can tell whose they are.
func tmpPrefix() string { return owner + "-" }

// tempOwner returns the token a temp file's name starts with.
func tempOwner(name string) string {
	tok, _, _ := strings.Cut(name, "-")
	if _, err := strconv.Atoi(tok); err == nil {
		// A first release named temp files by pid alone.
		if st := startTime(mustAtoi(tok)); st != "" {
			return tok + ":" + st
		}
		return ""
	}
	return tok
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
