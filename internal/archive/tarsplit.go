package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
	"golang.org/x/sys/unix"
)

// A tar-split record keeps everything of a layer tar except the file
// contents: the raw header blocks, padding and the end-of-archive
// blocks, byte for byte, and for each file its name, size and a CRC-64
// of its content. With the files (the layer's snapshot) it rebuilds the
// original tar exactly, whatever tool wrote it: containers/storage keeps
// the same record for the same reason. Records are zstd-compressed JSON
// lines in tar-split's entry format.

// Recording is a tar-split record being taken from a stream; see
// RecordTarSplit.
type Recording struct {
	pw   *io.PipeWriter
	done chan error
}

// RecordTarSplit returns a reader that yields r unchanged while the tar
// it carries is recorded into meta. The caller reads the returned reader
// to its end and then calls Finish. A tar the recorder cannot describe
// (a malformed one, for instance) never disturbs the stream: Finish
// reports it, and the record is then to be thrown away.
func RecordTarSplit(r io.Reader, meta io.Writer) (io.Reader, *Recording) {
	pr, pw := io.Pipe()
	rec := &Recording{pw: pw, done: make(chan error, 1)}
	go func() {
		rec.done <- record(pr, meta)
		// Keep taking what the reader copies, whatever happened above.
		_, _ = io.Copy(io.Discard, pr)
	}()
	return io.TeeReader(r, pw), rec
}

func record(r io.Reader, meta io.Writer) error {
	zw, err := zstd.NewWriter(meta, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	in, done, err := asm.NewInputTarStreamWithDone(r, &jsonPacker{enc: json.NewEncoder(zw)}, nil)
	if err != nil {
		return err
	}
	_, cerr := io.Copy(io.Discard, in)
	err = <-done
	if err == nil {
		err = cerr
	}
	return errors.Join(err, zw.Close())
}

// Finish waits until the whole stream is recorded; call it after reading
// the stream to its end (or after an error, to release the recorder).
func (rec *Recording) Finish() error {
	rec.pw.Close()
	if err := <-rec.done; err != nil {
		return fmt.Errorf("recording tar layout: %w", err)
	}
	return nil
}

// Abort stops the recorder after a failed read.
func (rec *Recording) Abort() {
	rec.pw.CloseWithError(io.ErrClosedPipe)
	<-rec.done
}

// jsonPacker writes tar-split entries as JSON lines. Unlike tar-split's
// own packer it accepts a tar that names a path twice: such a record may
// fail to rebuild the tar (the second entry's content is what the files
// hold), which the caller's digest check then catches.
type jsonPacker struct {
	enc *json.Encoder
	pos int
}

func (p *jsonPacker) AddEntry(e storage.Entry) (int, error) {
	if e.Name != "" && !utf8.ValidString(e.Name) {
		e.NameRaw, e.Name = []byte(e.Name), ""
	}
	e.Position = p.pos
	if err := p.enc.Encode(e); err != nil {
		return -1, err
	}
	p.pos++
	return e.Position, nil
}

type jsonUnpacker struct{ dec *json.Decoder }

func (u *jsonUnpacker) Next() (*storage.Entry, error) {
	var e storage.Entry
	if err := u.dec.Decode(&e); err != nil {
		return nil, err
	}
	return &e, nil
}

// RebuildTar writes to w the tar a tar-split record describes, reading
// each file's content by its name under root. Names are resolved inside
// root (symlinks included), and each file's content is checked against
// the CRC the record holds; the caller checks the whole tar against its
// digest.
func RebuildTar(ctx context.Context, meta io.Reader, root string, w io.Writer) error {
	zr, err := zstd.NewReader(meta, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("reading tar layout: %w", err)
	}
	defer zr.Close()
	dir, err := os.Open(root)
	if err != nil {
		return err
	}
	defer dir.Close()
	fg := rootedGetter{ctx: ctx, dir: dir}
	if err := asm.WriteOutputTarStream(fg, &jsonUnpacker{dec: json.NewDecoder(zr)}, w); err != nil {
		return fmt.Errorf("rebuilding layer tar from %s: %w", root, err)
	}
	return nil
}

// rootedGetter opens files by their tar names inside one directory.
type rootedGetter struct {
	ctx context.Context
	dir *os.File
}

func (g rootedGetter) Get(name string) (io.ReadCloser, error) {
	if err := g.ctx.Err(); err != nil {
		return nil, err
	}
	rel := filepath.Clean("/" + name)[1:]
	if rel == "" {
		return nil, fmt.Errorf("tar entry %q names no file", name)
	}
	fd, err := unix.Openat2(int(g.dir.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", rel, err)
	}
	return os.NewFile(uintptr(fd), rel), nil
}
