package store

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// TestLivenessByLock: a process is alive exactly while it holds its lock
// file, whatever its pid means here; a dead one's file is removed.
func TestLivenessByLock(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	if !s.alive(owner) {
		t.Fatal("this process is not alive")
	}
	tok := newToken()
	lock := filepath.Join(procsDir(s.root), tok)
	must(t, os.WriteFile(lock, nil, 0o600))
	// flock(1) holds the lock as another process would, from wherever.
	holder := exec.Command("flock", "--exclusive", "--no-fork", lock, "sleep", "30")
	must(t, holder.Start())
	for deadline := time.Now().Add(5 * time.Second); !s.alive(tok); {
		if time.Now().After(deadline) {
			t.Fatal("a process holding its lock is taken for dead")
		}
		time.Sleep(20 * time.Millisecond)
	}
	holder.Process.Kill()
	holder.Wait()
	if s.alive(tok) {
		t.Error("a killed process is taken for alive")
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Errorf("the dead process's lock file is still there: %v", err)
	}
	if s.alive(newToken()) {
		t.Error("a token with no lock file is taken for alive")
	}
}

// TestRecoveryTakesBackDeadWork: what a killed process wrote and nothing
// names (a pending blob, a held layer) is gone once the store is opened
// again; a live process's pending blob is left alone.
func TestRecoveryTakesBackDeadWork(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	tarball := gnuTar(t)
	d, _, err := s.PutBlob(ctx, "", bytesReader(tarball))
	must(t, err)
	l, err := s.AddBlobLayer(ctx, "", d, int64(len(tarball)), LayerBlob{Digest: d, MediaType: "application/vnd.oci.image.layer.v1.tar", Size: int64(len(tarball))})
	must(t, err)
	orphan, err := s.PutBlobBytes(ctx, []byte("a config nobody will name"))
	must(t, err)
	// As if another process, now dead, had done all this.
	dead := newToken()
	for _, q := range []string{`UPDATE blob_pending SET owner=?`, `UPDATE layer_holds SET owner=?`} {
		if _, err := s.db.sql.Exec(q, dead); err != nil {
			t.Fatal(err)
		}
	}
	// A live process's blob in progress must survive.
	live, err := s.PutBlobBytes(ctx, []byte("a live pull's blob"))
	must(t, err)
	must(t, s.db.close())
	unlockProcess(s.root)

	s2 := openTest(t, dir)
	defer s2.Close()
	if _, err := s2.Layer(ctx, l.ID); err == nil {
		t.Error("the dead process's layer is still there")
	}
	for _, b := range []digest.Digest{d, orphan} {
		if s2.HasBlob(b) {
			t.Errorf("blob %s of the dead process is still there", b)
		}
	}
	if !s2.HasBlob(live) {
		t.Error("this process's own pending blob was taken")
	}
}

// TestCloseTakesBackUnnamedWork: layers a process recorded that no image
// came to name (a failed import) and their blobs are gone once it closes
// the store.
func TestCloseTakesBackUnnamedWork(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	tarball := gnuTar(t)
	d, _, err := s.PutBlob(ctx, "", bytesReader(tarball))
	must(t, err)
	l, err := s.AddBlobLayer(ctx, "", d, int64(len(tarball)), LayerBlob{Digest: d, MediaType: "application/vnd.oci.image.layer.v1.tar", Size: int64(len(tarball))})
	must(t, err)
	must(t, s.Release(ctx, l.ID))
	must(t, s.Close())
	s2 := openTest(t, dir)
	defer s2.Close()
	if _, err := s2.Layer(ctx, l.ID); err == nil {
		t.Error("the unnamed layer outlived its process")
	}
	if s2.HasBlob(d) {
		t.Error("the unnamed layer's blob outlived its process")
	}
}
