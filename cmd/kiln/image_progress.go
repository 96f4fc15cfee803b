package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/transport"
)

// copyProgress shows the blob events of transport.Copy for pull, push,
// image copy and manifest push: a bar per blob when w is a terminal,
// one plain line per finished blob otherwise, nothing when quiet. It is
// safe for the concurrent calls Copy makes.
type copyProgress struct {
	w     io.Writer
	quiet bool

	mu   sync.Mutex
	bars map[digest.Digest]*mpb.Bar
	p    *mpb.Progress

	// announce orders "Getting image source signatures" before the
	// first blob line of each copy; announced says it was printed.
	announce  sync.Mutex
	announced bool
}

// newCopyProgress returns the progress display for w (the command's
// stderr). Bars are drawn only when w is a terminal.
func newCopyProgress(w io.Writer, quiet bool) *copyProgress {
	c := &copyProgress{w: w, quiet: quiet}
	if f, ok := w.(*os.File); ok && !quiet && term.IsTerminal(int(f.Fd())) {
		c.useBars(mpb.New(mpb.WithOutput(w), mpb.WithWidth(60)))
	}
	return c
}

func (c *copyProgress) useBars(p *mpb.Progress) {
	c.p = p
	c.bars = map[digest.Digest]*mpb.Bar{}
}

// progress returns the display as the images.Progress of one copy; nil
// when quiet.
func (c *copyProgress) progress() images.Progress {
	if c.quiet {
		return nil
	}
	return c
}

// Event shows a blob event of the copy, the first after the line
// containers/image starts every copy with (Buildah prints it, and
// scripts look for it to tell that an image was pulled).
func (c *copyProgress) Event(e transport.ProgressEvent) {
	c.announce.Lock()
	if !c.announced {
		c.announced = true
		c.printf("Getting image source signatures\n")
	}
	c.announce.Unlock()
	c.event(e)
}

// Trying says which image a pull is about to copy, as Buildah does.
func (c *copyProgress) Trying(name string) { c.printf("Trying to pull %s...\n", name) }

// Done stops the bars and says that the manifest was written.
func (c *copyProgress) Done(err error) {
	c.announce.Lock()
	c.announced = false
	c.announce.Unlock()
	c.finish()
	if err == nil {
		c.printf("Writing manifest to image destination\n")
	}
}

func blobKind(e transport.ProgressEvent) string {
	if e.Config {
		return "config"
	}
	return "blob"
}

func (c *copyProgress) event(e transport.ProgressEvent) {
	if c.p == nil {
		switch e.State {
		case transport.ProgressDone:
			c.printf("Copying %s %s done\n", blobKind(e), e.Digest)
		case transport.ProgressSkipped:
			c.printf("Copying %s %s skipped: already exists\n", blobKind(e), e.Digest)
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.bars[e.Digest]
	switch e.State {
	case transport.ProgressStarted:
		if b == nil {
			c.bars[e.Digest] = c.newBar(e)
		} else {
			b.SetCurrent(0)
		}
	case transport.ProgressRunning:
		if b != nil {
			b.SetCurrent(e.Done)
		}
	case transport.ProgressDone:
		if b != nil {
			b.SetTotal(-1, true)
		}
	case transport.ProgressSkipped:
		fmt.Fprintf(c.p, "Copying %s %s skipped: already exists\n", blobKind(e), shortDigest(e.Digest))
	}
}

func (c *copyProgress) newBar(e transport.ProgressEvent) *mpb.Bar {
	total := e.Size
	if total < 0 {
		total = 0
	}
	name := fmt.Sprintf("Copying %s %s", blobKind(e), shortDigest(e.Digest))
	return c.p.AddBar(total,
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.OnComplete(decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"), "done")),
	)
}

func shortDigest(d digest.Digest) string {
	if len(d.Encoded()) < 12 {
		return d.String()
	}
	return d.Algorithm().String() + ":" + d.Encoded()[:12]
}

// printf prints a line of progress (above the bars on a terminal).
func (c *copyProgress) printf(format string, args ...any) {
	if c.quiet {
		return
	}
	if c.p != nil {
		fmt.Fprintf(c.p, format, args...)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format, args...)
}

// finish stops the bars: those of blobs that did not finish (the copy
// failed) are dropped. Call it after the copy; a second call does
// nothing.
func (c *copyProgress) finish() {
	if c.p == nil {
		return
	}
	c.mu.Lock()
	for _, b := range c.bars {
		b.Abort(false)
	}
	c.mu.Unlock()
	c.p.Wait()
	c.p = nil // later lines go straight to w
}
