package backup

import (
	"context"

	"github.com/kiln-build/kiln/internal/store"
)

// Frozen is a store whose writers in other processes are kept out (see
// store.Freeze) until Thaw: what is read from it is one point in time.
type Frozen struct {
	st   *store.Store
	thaw func() error
}

// Freeze waits for the writes under way in other kiln processes to
// finish and keeps new ones out until Thaw; who says who holds the store
// (a waiting writer shows it). Work that must see the store unchanged
// across more than an export (a migration: export, import, check) holds
// it this way; Export alone freezes the store itself.
func Freeze(ctx context.Context, st *store.Store, who string) (*Frozen, error) {
	thaw, err := st.Freeze(ctx, who)
	if err != nil {
		return nil, err
	}
	return &Frozen{st: st, thaw: thaw}, nil
}

// Thaw lets writers in again. It may be called more than once.
func (f *Frozen) Thaw() error { return f.thaw() }
