package store

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errLayerBusy is returned by insertIncomplete when a live process other
// than this one is making the same layer.
var errLayerBusy = errors.New("layer is being made by another kiln process")

// layerLocks serialises the goroutines of this process that make the
// same layer (two builds committing equal content at once).
var layerLocks sync.Map // layer ID -> *sync.Mutex

// claimLayer makes this process the maker of layer l, unless the layer is
// complete already: then it is returned, held for this process (another
// process's GC must not take it before the caller names it), and release
// drops the hold. A layer another goroutine or process is making is
// waited for, never failed on. The caller calls release once the layer
// is complete and named by a container or image, or abandoned.
func (s *Store) claimLayer(ctx context.Context, l Layer, promoteFrom string) (existing *Layer, release func(), err error) {
	mu, _ := layerLocks.LoadOrStore(l.ID, &sync.Mutex{})
	m := mu.(*sync.Mutex)
	m.Lock()
	release = m.Unlock
	delay := 20 * time.Millisecond
	for {
		if had, err := s.hold(ctx, l.ID); err == nil {
			done, err := s.Layer(ctx, l.ID)
			unhold := func() {
				if !had { // another piece of this process's work holds it too
					_ = s.Release(context.WithoutCancel(ctx), l.ID)
				}
				m.Unlock()
			}
			if err != nil {
				unhold()
				return nil, func() {}, err
			}
			return &done, unhold, nil
		}
		err := s.insertIncomplete(ctx, l, promoteFrom)
		if !errors.Is(err, errLayerBusy) {
			if err != nil {
				release()
				return nil, func() {}, err
			}
			return nil, release, nil
		}
		select {
		case <-ctx.Done():
			release()
			return nil, func() {}, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}
