package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// syncBuffer is a log sink several goroutines write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// openOther opens the store at dir a second time, as another process
// would (its own database handle and lock file descriptor).
func openOther(t *testing.T, dir string, lockTimeout string, log *syncBuffer) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Driver: "overlay",
		DriverOpts: map[string]string{"lock_timeout": lockTimeout}, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestFreezeMakesWritersWait: while a store is frozen, a writer of
// another process waits, saying who froze it, and goes on once it is
// thawed; reads and opening the store do not wait; past lock_timeout the
// writer fails with ErrStoreFrozen naming who holds the store.
func TestFreezeMakesWritersWait(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	frozen := openTest(t, dir)
	defer frozen.Close()
	thaw, err := frozen.Freeze(ctx, "kiln storage export --dir /x")
	if err != nil {
		t.Fatal(err)
	}

	var log syncBuffer
	start := time.Now()
	other := openOther(t, dir, "1m", &log)
	if _, err := other.Images(ctx); err != nil {
		t.Fatalf("listing a frozen store: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("opening and listing a frozen store took %s", took)
	}
	layer := oneFileTar(t, "a", "A")
	done := make(chan error, 1)
	go func() {
		_, err := other.ApplyLayer(ctx, "", digest.FromBytes(layer), bytes.NewReader(layer))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a write went through a frozen store (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	if !strings.Contains(log.String(), "kiln storage export --dir /x") {
		t.Errorf("the waiting writer did not say who holds the store; log:\n%s", log.String())
	}
	if err := thaw(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the write after the thaw: %v", err)
	}

	thaw, err = frozen.Freeze(ctx, "kiln storage migrate --driver btrfs")
	if err != nil {
		t.Fatal(err)
	}
	defer thaw()
	impatient := openOther(t, dir, "300ms", &log)
	layer2 := oneFileTar(t, "b", "B")
	_, err = impatient.ApplyLayer(ctx, "", digest.FromBytes(layer2), bytes.NewReader(layer2))
	if !errors.Is(err, ErrStoreFrozen) || !strings.Contains(err.Error(), "kiln storage migrate --driver btrfs") {
		t.Fatalf("a write past lock_timeout = %v, want ErrStoreFrozen naming the migration", err)
	}
}

// TestFreezeWaitsForCommits: Freeze waits for a writer that holds the
// store (a commit in progress) to finish before it returns.
func TestFreezeWaitsForCommits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	defer s.Close()
	var log syncBuffer
	other := openOther(t, dir, "1m", &log)
	release, err := other.holdWriters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(400 * time.Millisecond)
		release()
	}()
	start := time.Now()
	thaw, err := s.Freeze(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer thaw()
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("Freeze returned after %s, while a commit held the store", took)
	}
}
