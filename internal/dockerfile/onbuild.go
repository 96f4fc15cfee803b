package dockerfile

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// triggers parses the base image's ONBUILD triggers, which run first in
// this stage, in order; the child's config does not keep them.
func (r *stageRun) triggers() ([]instructions.Command, error) {
	trig := r.cfg.Config.OnBuild
	if len(trig) == 0 {
		return nil, nil
	}
	r.clearOnBuild = true
	res, err := parser.Parse(strings.NewReader(strings.Join(trig, "\n") + "\n"))
	if err != nil {
		return nil, fmt.Errorf("ONBUILD trigger of %s: %w", r.s.base, err)
	}
	var out []instructions.Command
	for _, n := range res.AST.Children {
		switch strings.ToUpper(n.Value) {
		case "ONBUILD", "FROM", "MAINTAINER":
			return nil, fmt.Errorf("ONBUILD trigger of %s: %s is not allowed as a trigger", r.s.base, strings.ToUpper(n.Value))
		}
		c, err := instructions.ParseCommand(n)
		if err != nil {
			return nil, fmt.Errorf("ONBUILD trigger of %s: %w", r.s.base, err)
		}
		out = append(out, c)
	}
	return out, nil
}
