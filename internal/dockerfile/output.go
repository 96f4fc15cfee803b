package dockerfile

import (
	"fmt"
	"io"
	"sync"
)

// output serialises what concurrent stages print: step headers and the
// output of RUN steps. Each Write reaches the writer whole.
type output struct {
	mu    sync.Mutex
	w     io.Writer
	multi bool
	// pos numbers the stages that run, 1..n, as Buildah numbers them in
	// "[pos/n]"; stages not in it are numbered by their index.
	pos map[int]int
	n   int
}

var _ io.Writer = (*output)(nil)

func newOutput(w io.Writer) *output {
	if w == nil {
		w = io.Discard
	}
	return &output{w: w}
}

// Write passes p through under the lock.
func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

// step prints Buildah's step header, "[2/3] STEP 1/4: RUN …" with a
// stage prefix when several stages run.
func (o *output) step(s *stage, nstages, n, total int, text string) {
	prefix := ""
	if o.multi {
		prefix = o.prefix(s, nstages)
	}
	fmt.Fprintf(o, "%sSTEP %d/%d: %s\n", prefix, n, total, text)
}

// prefix is a stage's "[pos/n] ".
func (o *output) prefix(s *stage, nstages int) string {
	if p, ok := o.pos[s.index]; ok {
		return fmt.Sprintf("[%d/%d] ", p, o.n)
	}
	return fmt.Sprintf("[%d/%d] ", s.index+1, nstages)
}

// plain prints one line without a stage prefix, as Buildah prints the
// "--> ID" lines.
func (o *output) plain(format string, args ...any) {
	fmt.Fprintf(o, format+"\n", args...)
}

// line prints one line of stage s, prefixed like its step headers.
func (o *output) line(s *stage, nstages int, format string, args ...any) {
	prefix := ""
	if o.multi {
		prefix = o.prefix(s, nstages)
	}
	fmt.Fprintf(o, prefix+format+"\n", args...)
}
