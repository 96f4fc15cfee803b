package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/store/backup"
)

type storageExportOptions struct {
	Dir   string
	Quiet bool
}

func init() { registerStorage(newStorageExportCommand) }

func newStorageExportCommand() *cobra.Command {
	var o storageExportOptions
	cmd := &cobra.Command{
		Use:   "export --dir DIR",
		Short: "Write every image, layer, working container and the build cache into a directory",
		Long: `Export writes the whole store into DIR: every image with all its names and its
original blobs (so digests stay), every layer, every working container with its
writes, state, name and mount state, and the build cache. The format is described
in docs/storage.md; index.json is written last, so a directory without it is not
a finished export. Running export again on the same DIR reuses what is there.

The export is one consistent point in time: it waits for commits and other
writes under way in other kiln processes to finish, then keeps writers out
until it is done (they wait, saying why, up to the storage option
lock_timeout, default 10m); listings and other reads go on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			start := time.Now()
			p := newStorageProgress(cmd.ErrOrStderr(), o.Quiet)
			idx, err := backup.Export(ctx, st, o.Dir, backup.ExportOptions{Progress: p.callback()})
			p.finish()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %d images, %d layers, %d containers (%s) to %s in %s\n",
				len(idx.Images), len(idx.Layers), len(idx.Containers), store.HumanBytes(idx.Bytes()), o.Dir, rate(idx.Bytes(), time.Since(start)))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", "", "directory to export into (created if missing)")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print no progress")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

// rate prints a duration with the throughput it stands for.
func rate(n int64, d time.Duration) string {
	s := d.Round(time.Millisecond).String()
	if d > 0 && n > 0 {
		s += fmt.Sprintf(", %.1f MB/s", float64(n)/1e6/d.Seconds())
	}
	return s
}

// storageProgress shows backup.ProgressEvents for export, import and
// migrate: a bar per layer or container on a terminal, one plain line
// per finished item otherwise, nothing when quiet.
type storageProgress struct {
	w     io.Writer
	quiet bool

	mu   sync.Mutex
	p    *mpb.Progress
	bars map[string]*mpb.Bar
}

func newStorageProgress(w io.Writer, quiet bool) *storageProgress {
	sp := &storageProgress{w: w, quiet: quiet, bars: map[string]*mpb.Bar{}}
	if f, ok := w.(*os.File); ok && !quiet && term.IsTerminal(int(f.Fd())) {
		sp.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(50))
	}
	return sp
}

func (sp *storageProgress) callback() backup.Progress {
	if sp.quiet {
		return nil
	}
	return sp.event
}

func (sp *storageProgress) event(e backup.ProgressEvent) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.p == nil {
		if e.Finished {
			fmt.Fprintf(sp.w, "%s: %s done\n", e.Item, store.HumanBytes(e.Done))
		}
		return
	}
	b := sp.bars[e.Item]
	if b == nil {
		b = sp.p.AddBar(max(e.Total, 1),
			mpb.PrependDecorators(decor.Name(e.Item, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.OnComplete(decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"), "done")))
		sp.bars[e.Item] = b
	}
	if e.Total > 0 {
		b.SetTotal(e.Total, false)
	}
	b.SetCurrent(e.Done)
	if e.Finished {
		b.SetTotal(-1, true)
	}
}

// println prints a line above the bars, or plainly.
func (sp *storageProgress) println(msg string) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.p != nil {
		fmt.Fprintln(sp.p, msg)
		return
	}
	fmt.Fprintln(sp.w, msg)
}

// finish stops the bars; unfinished ones (a failure) are dropped.
func (sp *storageProgress) finish() {
	if sp.p == nil {
		return
	}
	sp.mu.Lock()
	for _, b := range sp.bars {
		b.Abort(false)
	}
	sp.mu.Unlock()
	sp.p.Wait()
	sp.p = nil
}
