package dockerfile

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"sync"
	"time"
)

// The layer tar of the virtual upper directory, byte for byte what
// archive.WriteUpperDiff writes for the upper directory the copier would
// have filled: entries in filepath.WalkDir order, PAX headers with
// whole-second times (clamped by the bound), the first path of a file
// with several links holding its content and the others linking to it,
// directories with their extended attributes.

// emitItem is one entry of the tar.
type emitItem struct {
	hdr  *tar.Header
	file *ufile // content to write after the header
}

// items lists the tar's entries.
func (u *upper) items(bound *time.Time) []emitItem {
	nlink := map[*ufile]int{}
	var count func(n *unode)
	count = func(n *unode) {
		for _, k := range n.kids {
			if k.file != nil {
				nlink[k.file]++
			}
			count(k)
		}
	}
	count(u.root)
	first := map[*ufile]string{}
	var out []emitItem
	var walk func(n *unode, rel string)
	walk = func(n *unode, rel string) {
		names := make([]string, 0, len(n.kids))
		for name := range n.kids {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			k := n.kids[name]
			p := path.Join(rel, name)
			it := emitItem{hdr: u.header(k, p, bound)}
			if k.file != nil && nlink[k.file] > 1 {
				if f, ok := first[k.file]; ok {
					it.hdr.Typeflag, it.hdr.Linkname, it.hdr.Size = tar.TypeLink, f, 0
				} else {
					first[k.file] = p
				}
			}
			if it.hdr.Typeflag == tar.TypeReg && it.hdr.Size > 0 {
				it.file = k.file
			}
			out = append(out, it)
			if k.mode.IsDir() {
				walk(k, p)
			}
		}
	}
	walk(u.root, "")
	return out
}

// header is the tar header archive.WriteUpperDiff writes for node n.
func (u *upper) header(n *unode, rel string, bound *time.Time) *tar.Header {
	h := &tar.Header{Name: rel, Uid: n.uid, Gid: n.gid, Format: tar.FormatPAX}
	mode, mtime := n.mode, n.mtime
	switch {
	case n.file != nil:
		f := n.file
		h.Typeflag, h.Size, h.Uid, h.Gid = tar.TypeReg, f.size, f.uid, f.gid
		mode, mtime = f.mode, f.mtime
	case n.mode.IsDir():
		h.Typeflag = tar.TypeDir
		h.Name += "/"
		if n.touched {
			mtime = u.now
		}
	case n.mode&fs.ModeSymlink != 0:
		h.Typeflag, h.Linkname = tar.TypeSymlink, n.link
	}
	h.Mode = tarMode(mode)
	h.ModTime = mtime.Truncate(time.Second).UTC()
	if bound != nil && h.ModTime.After(*bound) {
		h.ModTime = bound.UTC()
	}
	for k, v := range n.xattrs {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+k] = v
	}
	return h
}

// tarMode is a mode as tar.FileInfoHeader records it.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// fileSums receives the content digest of each source file read whose
// digest was asked for (sumFor), for the build's file hash cache.
type fileSums interface {
	sumFor(f *ufile) bool
	noteSum(f *ufile, sum string)
}

// Files up to readAhead bytes are read ahead by several goroutines,
// within a budget of aheadBudget bytes; larger ones are read in turn.
const (
	readAhead   = 1 << 20
	aheadBudget = 32 << 20
)

// prefetched is a file read ahead.
type prefetched struct {
	data []byte
	sum  string
	err  error
}

// writeTar writes the tar of items to w, reading contents ahead in
// parallel and digesting those sums asks for.
func writeTar(ctx context.Context, w io.Writer, items []emitItem, sums fileSums) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slots := make([]chan prefetched, len(items))
	for i, it := range items {
		if it.file != nil && it.file.size <= readAhead {
			slots[i] = make(chan prefetched, 1)
		}
	}
	budget := make(chan struct{}, aheadBudget/4096)
	jobs := make(chan int)
	var wg sync.WaitGroup
	workers := min(max(2*runtime.NumCPU(), 2), 8)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				slots[i] <- readWhole(ctx, items[i].file, sums)
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i, it := range items {
			if it.file == nil || it.file.size > readAhead {
				continue
			}
			for range blocks(it.file.size) {
				select {
				case budget <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	err := emit(ctx, w, items, slots, budget, sums)
	cancel()
	wg.Wait()
	return err
}

func blocks(size int64) int64 { return max((size+4095)/4096, 1) }

func emit(ctx context.Context, w io.Writer, items []emitItem, slots []chan prefetched, budget chan struct{}, sums fileSums) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	for i, it := range items {
		if err := tw.WriteHeader(it.hdr); err != nil {
			return err
		}
		if it.file == nil {
			continue
		}
		if it.file.size > readAhead {
			if err := copyLarge(ctx, tw, it.file, sums); err != nil {
				return err
			}
			continue
		}
		var got prefetched
		select {
		case got = <-slots[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if got.err != nil {
			return got.err
		}
		if _, err := tw.Write(got.data); err != nil {
			return err
		}
		putBuf(got.data)
		if got.sum != "" {
			sums.noteSum(it.file, got.sum)
		}
		for range blocks(it.file.size) {
			<-budget
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// readBufs hold the buffers of files read ahead, by size class: 4 KiB
// shifted left by the index, up to readAhead.
var readBufs [9]sync.Pool

func bufClass(n int64) int {
	c := 0
	for int64(4096)<<c < n {
		c++
	}
	return c
}

// getBuf returns a buffer of n bytes (n ≤ readAhead).
func getBuf(n int64) []byte {
	c := bufClass(n)
	if v, ok := readBufs[c].Get().(*[]byte); ok {
		return (*v)[:n]
	}
	return make([]byte, n, int64(4096)<<c)
}

// putBuf gives a buffer of getBuf back.
func putBuf(b []byte) {
	c := bufClass(int64(cap(b)))
	if c < len(readBufs) && int64(4096)<<c == int64(cap(b)) {
		readBufs[c].Put(&b)
	}
}

// readWhole reads a small file whole, digesting it when asked.
func readWhole(ctx context.Context, f *ufile, sums fileSums) prefetched {
	rc, err := f.src.open(ctx, f.path)
	if err != nil {
		return prefetched{err: err}
	}
	defer rc.Close()
	buf := getBuf(f.size)
	n, err := io.ReadFull(rc, buf)
	if err != nil {
		putBuf(buf)
		return prefetched{err: fmt.Errorf("%s changed size while being read (%d bytes, then %d): %w", f.path, f.size, n, err)}
	}
	out := prefetched{data: buf}
	if sums != nil && sums.sumFor(f) {
		s := sha256.Sum256(buf)
		out.sum = hex.EncodeToString(s[:])
	}
	return out
}

// copyLarge writes a large file's content to w, digesting it when asked.
func copyLarge(ctx context.Context, w io.Writer, f *ufile, sums fileSums) error {
	rc, err := f.src.open(ctx, f.path)
	if err != nil {
		return err
	}
	defer rc.Close()
	want := sums != nil && sums.sumFor(f)
	h := sha256.New()
	dst := w
	if want {
		dst = io.MultiWriter(w, h)
	}
	n, err := io.Copy(dst, io.LimitReader(rc, f.size))
	if err == nil && n != f.size {
		err = fmt.Errorf("%s changed size while being read (%d bytes, then %d)", f.path, f.size, n)
	}
	if err != nil {
		return err
	}
	if want {
		sums.noteSum(f, hex.EncodeToString(h.Sum(nil)))
	}
	return nil
}
