package store

import (
	"context"
	"database/sql"
	"errors"
	"io"

	"github.com/kiln-build/kiln/internal/store/driver"
)

// errBusy is returned by quiesce when a process has files open in the
// container's mount, so that it cannot be unmounted for a promotion.
var errBusy = errors.New("busy: a process has files open in its mount")

// copyCommit is CommitLayer when the container's mount is busy (a shell
// sits in it): its writes are copied into layer l instead of promoted,
// and the container stays mounted on its snapshot, which keeps holding
// the same writes. The container's record moves onto l, so its next
// commit stacks on l; that layer repeats what l holds (the writable
// snapshot still holds everything written since it was made) and ends
// in the same files. The diff must not change meanwhile: a mismatch
// with the diff ID fails the commit and leaves nothing.
func (s *Store) copyCommit(ctx context.Context, c Container, l Layer, o CommitOptions) (Layer, error) {
	bg := context.WithoutCancel(ctx)
	err := s.db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE layers SET promote_from='' WHERE id=?`, l.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE containers SET promoting='' WHERE id=?`, c.ID)
		return err
	})
	if err != nil {
		return Layer{}, errors.Join(err, s.abandonPromotion(bg, l.ID, c.ID))
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(s.driver.Diff(ctx, c.ID, pw, driver.DiffOptions{ModTimeUpperBound: o.MTimeBound}))
	}()
	size, err := s.fillLayer(ctx, l.ID, c.Layer, l.DiffID, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return Layer{}, errors.Join(s.noSpace(ctx, err), s.abandonLayer(bg, l.ID))
	}
	done, err := s.completeLayer(ctx, l.ID, size)
	if err != nil {
		return Layer{}, err
	}
	return done, s.updateContainer(ctx, c.ID, `UPDATE containers SET layer=? WHERE id=?`, l.ID, c.ID)
}
