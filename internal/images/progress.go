package images

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/transport"
)

// Progress shows one copy while it runs. Event receives the copy's blob
// events, from concurrent goroutines; Done is called once when the copy
// has ended, with nil when the manifest was written. A function that
// turns out to need no copy (an image already in the store) calls
// neither.
type Progress interface {
	Event(transport.ProgressEvent)
	Done(err error)
}

// Announcer is a Progress that is told, before a pull copies anything,
// the name of the image it pulls (Buildah prints "Trying to pull NAME...").
type Announcer interface {
	Trying(name string)
}

// copyImage copies src to dst with o, showing it on p (nil shows
// nothing), and returns the digest of the manifest written.
func copyImage(ctx context.Context, dst transport.Destination, src transport.Source, o transport.CopyOptions, p Progress) (digest.Digest, error) {
	if p != nil {
		o.Progress = p.Event
	}
	d, err := transport.Copy(ctx, dst, src, o)
	if p != nil {
		p.Done(err)
	}
	return d, err
}
