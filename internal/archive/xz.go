package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// maxXzDict is the largest LZMA2 dictionary an xz stream may ask for:
// that of xz -9. The xz package allocates whatever a block header claims
// (up to 4 GiB from a 100-byte stream), so kiln reads the xz container
// itself and hands each block to an LZMA2 reader of the claimed size once
// it is known to be within this bound.
const maxXzDict = 64 << 20

var (
	errXzFormat = errors.New("xz: malformed stream")
	xzMagic     = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	crc64Table  = crc64.MakeTable(crc64.ECMA)
)

// xzReader decodes the xz streams of r (one or more, concatenated, as
// the xz tool does), holding at most maxXzDict of dictionary.
type xzReader struct {
	r     *bufio.Reader
	check byte      // check type of the current stream
	block io.Reader // LZMA2 data of the current block, nil between blocks
	sum   hash.Hash // the block's check, nil when it has none
	err   error
}

func newXzReader(r io.Reader) (*xzReader, error) {
	x := &xzReader{r: bufio.NewReader(r)}
	if err := x.streamHeader(); err != nil {
		return nil, err
	}
	return x, nil
}

func (x *xzReader) Read(p []byte) (int, error) {
	for x.err == nil {
		if x.block == nil {
			x.err = x.nextBlock()
			continue
		}
		n, err := x.block.Read(p)
		if x.sum != nil {
			x.sum.Write(p[:n])
		}
		if err == io.EOF {
			x.err = x.endBlock()
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, x.err
}

func (x *xzReader) streamHeader() error {
	var h [12]byte
	if _, err := io.ReadFull(x.r, h[:]); err != nil {
		return fmt.Errorf("%w: stream header: %w", errXzFormat, err)
	}
	if !bytes.Equal(h[:6], xzMagic) || h[6] != 0 || h[7] > 0x0f || crc32.ChecksumIEEE(h[6:8]) != binary.LittleEndian.Uint32(h[8:]) {
		return fmt.Errorf("%w: bad stream header", errXzFormat)
	}
	x.check = h[7]
	return nil
}

// nextBlock starts the next block, or reads the index, footer and
// padding that end a stream and returns io.EOF after the last stream.
func (x *xzReader) nextBlock() error {
	b, err := x.r.ReadByte()
	if err != nil {
		return fmt.Errorf("%w: %w", errXzFormat, io.ErrUnexpectedEOF)
	}
	if b == 0 {
		if err := x.endStream(); err != nil {
			return err
		}
		return x.nextStream()
	}
	hdr := make([]byte, (int(b)+1)*4)
	hdr[0] = b
	if _, err := io.ReadFull(x.r, hdr[1:]); err != nil {
		return fmt.Errorf("%w: block header: %w", errXzFormat, err)
	}
	n := len(hdr) - 4
	if crc32.ChecksumIEEE(hdr[:n]) != binary.LittleEndian.Uint32(hdr[n:]) {
		return fmt.Errorf("%w: block header checksum", errXzFormat)
	}
	dict, err := lzma2Dict(hdr[1:n])
	if err != nil {
		return err
	}
	if dict > maxXzDict {
		return fmt.Errorf("%w: xz block wants a %d MiB dictionary, more than %d MiB", ErrLayerRefused, dict>>20, maxXzDict>>20)
	}
	cr := &countingReader{r: x.r, n: int64(len(hdr))}
	lr, err := lzma.Reader2Config{DictCap: int(max(dict, lzma.MinDictCap))}.NewReader2(cr)
	if err != nil {
		return fmt.Errorf("%w: %w", errXzFormat, err)
	}
	x.block, x.sum = &blockData{Reader: lr, cr: cr}, x.newCheck()
	return nil
}

// lzma2Dict reads the block flags and filter flags of a block header
// and returns the dictionary size of its one filter, LZMA2.
func lzma2Dict(h []byte) (int64, error) {
	flags, h := h[0], h[1:]
	if flags&0x3c != 0 || flags&0x03 != 0 {
		return 0, fmt.Errorf("%w: unsupported block flags %#x (only one LZMA2 filter is)", errXzFormat, flags)
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // sizes
		if present {
			if _, n := binary.Uvarint(h); n <= 0 {
				return 0, fmt.Errorf("%w: block sizes", errXzFormat)
			} else {
				h = h[n:]
			}
		}
	}
	if len(h) < 3 || h[0] != 0x21 || h[1] != 1 {
		return 0, fmt.Errorf("%w: only the LZMA2 filter is supported", errXzFormat)
	}
	bits := h[2]
	switch {
	case bits > 40:
		return 0, fmt.Errorf("%w: LZMA2 dictionary size %#x", errXzFormat, bits)
	case bits == 40:
		return 1<<32 - 1, nil
	}
	return int64(2|bits&1) << (bits/2 + 11), nil
}

func (x *xzReader) newCheck() hash.Hash {
	switch x.check {
	case 0x01:
		return crc32.NewIEEE()
	case 0x04:
		return crc64.New(crc64Table)
	case 0x0a:
		return sha256.New()
	}
	return nil
}

// checkSize is the size of a block check of type c.
func checkSize(c byte) int {
	if c == 0 {
		return 0
	}
	return 4 << ((c - 1) / 3)
}

// endBlock reads the padding and the check after a block's data.
func (x *xzReader) endBlock() error {
	bd := x.block.(*blockData)
	x.block = nil
	pad := make([]byte, (4-bd.cr.n%4)%4)
	if _, err := io.ReadFull(x.r, pad); err != nil || !allZero(pad) {
		return fmt.Errorf("%w: block padding", errXzFormat)
	}
	check := make([]byte, checkSize(x.check))
	if _, err := io.ReadFull(x.r, check); err != nil {
		return fmt.Errorf("%w: block check: %w", errXzFormat, err)
	}
	if x.sum != nil {
		got := x.sum.Sum(nil)
		if x.check != 0x0a { // CRCs are stored little-endian
			for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
				got[i], got[j] = got[j], got[i]
			}
		}
		if !bytes.Equal(got, check) {
			return fmt.Errorf("%w: block check mismatch", errXzFormat)
		}
	}
	return nil
}

// endStream reads the index (its indicator already read) and the stream
// footer. The index is not compared with the blocks: the layer's digest
// covers the whole stream.
func (x *xzReader) endStream() error {
	read := 1
	uvarint := func() (uint64, error) {
		v, err := binary.ReadUvarint(byteCounter{x.r, &read})
		if err != nil {
			return 0, fmt.Errorf("%w: index: %w", errXzFormat, err)
		}
		return v, nil
	}
	records, err := uvarint()
	if err != nil {
		return err
	}
	for range 2 * records {
		if _, err := uvarint(); err != nil {
			return err
		}
	}
	rest := make([]byte, (4-read%4)%4+4+12) // padding, CRC32, footer
	if _, err := io.ReadFull(x.r, rest); err != nil || !bytes.Equal(rest[len(rest)-2:], []byte("YZ")) {
		return fmt.Errorf("%w: stream footer", errXzFormat)
	}
	return nil
}

// nextStream skips stream padding and reads the next stream's header,
// or returns io.EOF at the end of the input.
func (x *xzReader) nextStream() error {
	for {
		b, err := x.r.Peek(4)
		if err == io.EOF && len(b) == 0 {
			return io.EOF
		}
		if err != nil && len(b) < 4 {
			return fmt.Errorf("%w: stream padding", errXzFormat)
		}
		if !allZero(b) {
			return x.streamHeader()
		}
		x.r.Discard(4)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// blockData is the LZMA2 reader of one block and the count of the
// block's bytes read so far (header included), for its padding.
type blockData struct {
	io.Reader
	cr *countingReader
}

type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

type byteCounter struct {
	r *bufio.Reader
	n *int
}

func (b byteCounter) ReadByte() (byte, error) {
	c, err := b.r.ReadByte()
	if err == nil {
		*b.n++
	}
	return c, err
}
