package dockerfile

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// deps lists the earlier stages stage s reads: its FROM, COPY --from and
// RUN --mount from=. References are expanded with the global ARGs; a
// name that is no stage is an image (or a named context).
func (b *builder) deps(s *stage) ([]*stage, error) {
	lex := b.df.lexer()
	env := envGetter{args: b.global}
	var refs []string
	var out []*stage
	base, err := expandWord(lex, s.base, envGetter{args: fromArgs(b.df, s, b.global, b.o.Args)})
	if err != nil {
		return nil, fmt.Errorf("%s:%d: %w", b.df.name, s.line, err)
	}
	if _, named := b.o.Contexts[base]; !named {
		if d, ok := b.df.lookupNamed(base, s.index); ok {
			out = append(out, d)
		}
	}
	for _, c := range s.commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != "" {
				refs = append(refs, c.From)
			}
		case *instructions.RunCommand:
			refs = append(refs, mountFroms(c)...)
		}
	}
	for _, ref := range refs {
		ref, err := expandWord(lex, ref, env)
		if err != nil {
			return nil, err
		}
		if _, named := b.namedContext(ref, s.index); named {
			continue // a named context wins over a stage of that name
		}
		if d, ok := b.df.lookupStage(ref, s.index); ok {
			out = append(out, d)
			continue
		}
		if _, later := b.df.lookupStage(ref, -1); later && !strings.EqualFold(ref, s.name) {
			return nil, fmt.Errorf("%w: %s:%d: %q names a stage that comes later", ErrNoStage, b.df.name, s.line, ref)
		}
	}
	return out, nil
}

// mountFroms lists the from= values of a RUN's --mount flags, read
// from the instruction's flags before expansion.
func mountFroms(c *instructions.RunCommand) []string {
	var out []string
	for _, m := range strings.Fields(c.String()) {
		if !strings.HasPrefix(m, "--mount=") {
			continue
		}
		for _, kv := range strings.Split(strings.TrimPrefix(m, "--mount="), ",") {
			if v, ok := strings.CutPrefix(kv, "from="); ok {
				out = append(out, v)
			}
		}
	}
	return out
}
