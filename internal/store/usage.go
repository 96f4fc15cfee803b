package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
)

// Usage is what the store holds and the room it takes, for `kiln info`
// and `kiln storage info`. It is read, never written.
type Usage struct {
	Images     int
	Layers     int
	Containers int
	Blobs      int
	// BlobBytes is the size of the blob directory (compressed layers,
	// configs, manifests).
	BlobBytes int64
	// LayerBytes is the uncompressed size of every layer.
	LayerBytes int64
	// Layers exist as files (a driver snapshot), or only as a blob until
	// something needs their files (pulled layers, COPY layers of builds):
	// how many of each, and their uncompressed sizes.
	FileLayers, BlobOnlyLayers         int
	FileLayerBytes, BlobOnlyLayerBytes int64
	// SharedBytes are layer bytes that more than one image or container
	// builds on; ExclusiveBytes are those only one uses; UnusedBytes are
	// layers nothing uses (prune removes them).
	SharedBytes, ExclusiveBytes, UnusedBytes int64
	// ContainerBytes is the disk use of the containers' writable layers.
	ContainerBytes int64
	// DatabaseBytes is the metadata database with its WAL.
	DatabaseBytes int64
	// DriverMetadataBytes is the driver's bookkeeping outside the layer
	// contents (parent and link files, short-name links).
	DriverMetadataBytes int64
	// Reclaimable is what `kiln prune` would give back.
	Reclaimable Reclaim
}

// Usage measures the store. Counts come from one read transaction; sizes
// of containers' writable layers are measured on disk.
func (s *Store) Usage(ctx context.Context) (Usage, error) {
	var u Usage
	in, err := s.readInventory(ctx)
	if err != nil {
		return u, err
	}
	u.Images, u.Layers, u.Containers = len(in.images), len(in.layers), len(in.containers)
	users := map[string]int{} // layer -> images and containers whose chain holds it
	var tops []string
	for _, img := range in.images {
		tops = append(tops, img.TopLayer)
	}
	for _, c := range in.containers {
		tops = append(tops, c.Layer)
	}
	for _, top := range tops {
		for id := range in.reachable([]string{top}) {
			users[id]++
		}
	}
	for id, l := range in.layers {
		u.LayerBytes += l.Size
		if l.Files {
			u.FileLayers++
			u.FileLayerBytes += l.Size
		} else {
			u.BlobOnlyLayers++
			u.BlobOnlyLayerBytes += l.Size
		}
		switch users[id] {
		case 0:
			u.UnusedBytes += l.Size
		case 1:
			u.ExclusiveBytes += l.Size
		default:
			u.SharedBytes += l.Size
		}
	}
	for _, c := range in.containers {
		if n, err := s.driver.Size(ctx, c.ID); err == nil {
			u.ContainerBytes += n
		}
	}
	files, err := s.blobFiles()
	if err != nil {
		return u, err
	}
	u.Blobs = len(files)
	for _, f := range files {
		u.BlobBytes += f.Size
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(filepath.Join(s.root, "kiln.db"+suffix)); err == nil {
			u.DatabaseBytes += fi.Size()
		}
	}
	u.DriverMetadataBytes = driverMetadataBytes(s.driver.Home())
	if u.Reclaimable, err = s.Reclaimable(ctx); err != nil {
		return u, err
	}
	return u, nil
}

// driverMetadataBytes sums the small files every driver keeps beside a
// snapshot's content (parent, link, quota) and its top-level state files,
// without walking any content.
func driverMetadataBytes(home string) int64 {
	var n int64
	top, _ := os.ReadDir(home)
	for _, e := range top {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if !e.IsDir() {
			n += fi.Size()
			continue
		}
		sub, _ := os.ReadDir(filepath.Join(home, e.Name()))
		if e.Name() == "l" {
			n += int64(len(sub)) * 64 // short-name symlinks
			continue
		}
		for _, f := range sub {
			if f.Type().IsRegular() && !strings.HasPrefix(f.Name(), ".tmp-") {
				if fi, err := f.Info(); err == nil {
					n += fi.Size()
				}
			}
		}
	}
	return n
}
