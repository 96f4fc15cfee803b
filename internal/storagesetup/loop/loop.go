// Package loop attaches regular files to loop block devices through the
// kernel's loop-control interface, without losetup.
package loop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoLoop: the kernel has no loop device support here.
var ErrNoLoop = errors.New("loop devices are not available")

// Device is an attached loop device, held open.
type Device struct {
	Path string // /dev/loopN
	f    *os.File
}

// Close lets go of the device. An autoclear device whose last user this
// was (nothing mounted from it) detaches itself.
func (d *Device) Close() error { return d.f.Close() }

// Attach binds file to a free loop device and holds it open. With
// autoclear the device detaches itself when its last user goes away: so
// mount it before Close. Without, Detach must be called.
func Attach(file string, autoclear bool) (*Device, error) {
	back, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s for a loop device: %w", file, err)
	}
	defer back.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoLoop, err)
	}
	defer ctl.Close()
	// Another process may take the free device between the two calls:
	// EBUSY means try the next one.
	for try := 0; try < 20; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("%w: finding a free loop device: %v", ErrNoLoop, err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		f, err := configure(dev, back, autoclear)
		if errors.Is(err, unix.EBUSY) {
			time.Sleep(time.Duration(try) * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("attaching %s to %s: %w", file, dev, err)
		}
		return &Device{Path: dev, f: f}, nil
	}
	return nil, fmt.Errorf("attaching %s: every free loop device was taken by another process", file)
}

func configure(dev string, back *os.File, autoclear bool) (*os.File, error) {
	f, err := openDevice(dev)
	if err != nil {
		return nil, err
	}
	cfg := unix.LoopConfig{Fd: uint32(back.Fd())}
	if autoclear {
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	}
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], back.Name())
	if err := unix.IoctlLoopConfigure(int(f.Fd()), &cfg); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openDevice opens a loop device node, waiting briefly for udev (or
// making the node itself where no udev runs).
func openDevice(dev string) (*os.File, error) {
	for i := 0; ; i++ {
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err == nil || !errors.Is(err, os.ErrNotExist) || i == 50 {
			return f, err
		}
		var n uint32
		if _, err := fmt.Sscanf(dev, "/dev/loop%d", &n); err == nil {
			_ = unix.Mknod(dev, unix.S_IFBLK|0o660, int(unix.Mkdev(7, n)))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Detach unbinds the loop device. Detaching a device that is not bound is
// no error.
func Detach(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("detaching %s: %w", dev, err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("detaching %s: %w", dev, err)
	}
	return nil
}

// BackingFile returns the file bound to the loop device dev, or "" when
// dev is no loop device or is not bound.
func BackingFile(dev string) string {
	name := filepath.Base(dev)
	b, err := os.ReadFile(filepath.Join("/sys/block", name, "loop", "backing_file"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Find returns the loop device file is bound to, or "" when none is.
func Find(file string) string {
	abs, err := filepath.Abs(file)
	if err != nil {
		return ""
	}
	matches, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err == nil && strings.TrimSpace(string(b)) == abs {
			return "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(m)))
		}
	}
	return ""
}

// SetCapacity makes the loop device dev see its backing file's new size.
func SetCapacity(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("resizing %s: %w", dev, err)
	}
	return nil
}
