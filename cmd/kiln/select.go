package main

import (
	"context"
	"errors"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/store"
)

// selectContainers opens every container when all is set, then each one
// args names. Containers that could be opened are returned beside the
// joined errors of those that could not, so a verb may go on or stop.
func selectContainers(ctx context.Context, st *store.Store, args []string, all bool) ([]*container.Container, error) {
	var ctrs []*container.Container
	if all {
		var err error
		if ctrs, err = container.All(ctx, st); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, ref := range args {
		c, err := container.Open(ctx, st, ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ctrs = append(ctrs, c)
	}
	return ctrs, errors.Join(errs...)
}
