package images

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// Difference is the first thing that differs between two images.
type Difference struct {
	// Layer is the 1-based layer that differs; 0 when the configs differ
	// and the layers do not.
	Layer int
	// Path is the file of the layer that differs ("" for a config
	// difference or a layer that ends early).
	Path string
	// What says how: the field and both values.
	What string
}

// String describes the difference for a person.
func (d Difference) String() string {
	switch {
	case d.Layer == 0:
		return "image config: " + d.What
	case d.Path == "":
		return fmt.Sprintf("layer %d: %s", d.Layer, d.What)
	}
	return fmt.Sprintf("layer %d, %s: %s", d.Layer, d.Path, d.What)
}

// Compare finds the first difference between the stored images a and b:
// the first layer whose diff ID differs, and in it the first file whose
// header or content differs; else the first differing config field.
// It returns nil when the images have the same ID.
func Compare(ctx context.Context, st *store.Store, a, b string) (*Difference, error) {
	ia, err := st.LookupImage(ctx, a)
	if err != nil {
		return nil, err
	}
	ib, err := st.LookupImage(ctx, b)
	if err != nil {
		return nil, err
	}
	if ia.ID == ib.ID {
		return nil, nil
	}
	la, err := st.LayerChain(ctx, ia.TopLayer)
	if err != nil {
		return nil, err
	}
	lb, err := st.LayerChain(ctx, ib.TopLayer)
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i].DiffID == lb[i].DiffID {
			continue
		}
		d, err := compareLayers(ctx, st, la[i], lb[i])
		if err != nil {
			return nil, fmt.Errorf("comparing layer %d: %w", i+1, err)
		}
		d.Layer = i + 1
		return d, nil
	}
	if len(la) != len(lb) {
		return &Difference{Layer: min(len(la), len(lb)) + 1, What: fmt.Sprintf("one image has %d layers, the other %d", len(la), len(lb))}, nil
	}
	ca, err := configOf(st, ia)
	if err != nil {
		return nil, err
	}
	cb, err := configOf(st, ib)
	if err != nil {
		return nil, err
	}
	return &Difference{What: configDifference(ca, cb)}, nil
}

func configOf(st *store.Store, img store.Image) (*image.Config, error) {
	raw, err := st.ImageConfig(img)
	if err != nil {
		return nil, err
	}
	return image.ParseConfig(raw)
}

// configDifference names the first top-level config field that differs.
func configDifference(a, b *image.Config) string {
	if !reflect.DeepEqual(a.Created, b.Created) {
		return fmt.Sprintf("created %v vs %v", a.Created, b.Created)
	}
	for i := 0; i < len(a.History) && i < len(b.History); i++ {
		if !reflect.DeepEqual(a.History[i], b.History[i]) {
			return fmt.Sprintf("history entry %d: %+v vs %+v", i+1, a.History[i], b.History[i])
		}
	}
	if !reflect.DeepEqual(a.Config, b.Config) {
		return fmt.Sprintf("config %+v vs %+v", a.Config, b.Config)
	}
	return "the configs differ outside created, history and config"
}

// tarEntry is what of a tar entry must match, with its content's hash.
type tarEntry struct {
	hdr *tar.Header
	sum string
}

// compareLayers reads both layers' tars in order and reports the first
// entry that differs.
func compareLayers(ctx context.Context, st *store.Store, a, b store.Layer) (*Difference, error) {
	ea, eb := make(chan tarEntry), make(chan tarEntry)
	errs := make(chan error, 2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, side := range []struct {
		l  store.Layer
		ch chan tarEntry
	}{{a, ea}, {b, eb}} {
		go func() {
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(st.LayerTar(ctx, side.l, pw)) }()
			errs <- walkTar(ctx, pr, side.ch)
			pr.Close()
		}()
	}
	for {
		x, okA := <-ea
		y, okB := <-eb
		switch {
		case !okA && !okB:
			cancel()
			if err := errors.Join(<-errs, <-errs); err != nil && !errors.Is(err, context.Canceled) {
				return nil, err
			}
			return &Difference{What: "the tars differ only in their padding or end"}, nil
		case !okA:
			return &Difference{Path: y.hdr.Name, What: "only in the second image"}, nil
		case !okB:
			return &Difference{Path: x.hdr.Name, What: "only in the first image"}, nil
		}
		if what := headerDifference(x, y); what != "" {
			return &Difference{Path: x.hdr.Name, What: what}, nil
		}
	}
}

func walkTar(ctx context.Context, r io.Reader, out chan<- tarEntry) error {
	defer close(out)
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		h := sha256.New()
		if _, err := io.Copy(h, tr); err != nil {
			return err
		}
		select {
		case out <- tarEntry{hdr: hdr, sum: hex.EncodeToString(h.Sum(nil))}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func headerDifference(x, y tarEntry) string {
	a, b := x.hdr, y.hdr
	switch {
	case a.Name != b.Name:
		return fmt.Sprintf("the first image has %s here, the second %s", a.Name, b.Name)
	case a.Typeflag != b.Typeflag:
		return fmt.Sprintf("type %c vs %c", a.Typeflag, b.Typeflag)
	case !a.ModTime.Equal(b.ModTime):
		return fmt.Sprintf("modification time %s vs %s", a.ModTime.UTC().Format("2006-01-02T15:04:05.999999999Z"), b.ModTime.UTC().Format("2006-01-02T15:04:05.999999999Z"))
	case a.Mode != b.Mode:
		return fmt.Sprintf("mode %o vs %o", a.Mode, b.Mode)
	case a.Uid != b.Uid || a.Gid != b.Gid:
		return fmt.Sprintf("owner %d:%d vs %d:%d", a.Uid, a.Gid, b.Uid, b.Gid)
	case a.Linkname != b.Linkname:
		return fmt.Sprintf("link target %q vs %q", a.Linkname, b.Linkname)
	case x.sum != y.sum:
		return fmt.Sprintf("content differs (%d and %d bytes)", a.Size, b.Size)
	case !a.AccessTime.Equal(b.AccessTime) || !a.ChangeTime.Equal(b.ChangeTime):
		return "access or change time"
	case !reflect.DeepEqual(a.PAXRecords, b.PAXRecords):
		return fmt.Sprintf("extended attributes or PAX records %v vs %v", a.PAXRecords, b.PAXRecords)
	case a.Uname != b.Uname || a.Gname != b.Gname:
		return fmt.Sprintf("owner names %s:%s vs %s:%s", a.Uname, a.Gname, b.Uname, b.Gname)
	case a.Devmajor != b.Devmajor || a.Devminor != b.Devminor:
		return "device numbers"
	}
	return ""
}
