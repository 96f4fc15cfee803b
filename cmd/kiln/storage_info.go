package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/storageconf"
	"github.com/kiln-build/kiln/internal/storagesetup"
	"github.com/kiln-build/kiln/internal/store"
)

// storageInfo is what `kiln storage info` shows and `kiln info` includes
// under "store"; the JSON names are those --format templates use.
type storageInfo struct {
	GraphDriverName string            `json:"GraphDriverName"`
	GraphStatus     map[string]string `json:"GraphStatus"`
	statusOrder     [][2]string
	GraphRoot       string `json:"GraphRoot"`
	RunRoot         string `json:"RunRoot"`
	BackingFS       string `json:"BackingFilesystem"`
	BackingDevice   string `json:"BackingDevice"`
	MountPoint      string `json:"MountPoint"`
	MountOptions    string `json:"MountOptions"`
	DType           bool   `json:"SupportsDType"`
	ProjectQuota    bool   `json:"ProjectQuota"`

	DataSpaceUsed          int64  `json:"DataSpaceUsed"`
	DataSpaceTotal         int64  `json:"DataSpaceTotal"`
	DataSpaceAvailable     int64  `json:"DataSpaceAvailable"`
	MetadataSpaceUsed      int64  `json:"MetadataSpaceUsed"`
	MetadataSpaceTotal     int64  `json:"MetadataSpaceTotal"`
	MetadataSpaceAvailable int64  `json:"MetadataSpaceAvailable"`
	DatabaseBytes          int64  `json:"DatabaseBytes"`
	DriverMetadataBytes    int64  `json:"DriverMetadataBytes"`
	InodesUsed             uint64 `json:"InodesUsed"`
	InodesTotal            uint64 `json:"InodesTotal"`
	InodesAvailable        uint64 `json:"InodesAvailable"`
	MinFreeSpace           int64  `json:"MinFreeSpace"`

	ImageStore     map[string]int `json:"ImageStore"`
	ContainerStore map[string]int `json:"ContainerStore"`
	Layers         int            `json:"Layers"`
	Blobs          int            `json:"Blobs"`
	BlobBytes      int64          `json:"BlobBytes"`
	LayerBytes     int64          `json:"LayerBytes"`
	SharedBytes    int64          `json:"SharedBytes"`
	ExclusiveBytes int64          `json:"ExclusiveBytes"`
	UnusedBytes    int64          `json:"UnusedBytes"`
	ContainerBytes int64          `json:"ContainerBytes"`
	Reclaimable    int64          `json:"ReclaimableBytes"`
	Warnings       []string       `json:"Warnings"`

	// Layers with files (a snapshot) and layers that are only a blob
	// until something needs their files, with their uncompressed sizes.
	FileLayers         int   `json:"FileLayers"`
	FileLayerBytes     int64 `json:"FileLayerBytes"`
	BlobOnlyLayers     int   `json:"BlobOnlyLayers"`
	BlobOnlyLayerBytes int64 `json:"BlobOnlyLayerBytes"`
}

func init() { registerStorage(newStorageInfoCommand) }

func newStorageInfoCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [--format json|TEMPLATE]",
		Short: "Show the driver, backing filesystem, data and metadata space, and what the store holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			si, err := gatherStorageInfo(cmd.Context())
			if err != nil {
				return err
			}
			if format == "" {
				printStorageInfo(cmd.OutOrStdout(), si)
				return nil
			}
			return render(cmd.OutOrStdout(), format, []any{si}, true)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "json, or a Go template such as '{{.DataSpaceUsed}}'")
	return cmd
}

// gatherStorageInfo opens the store and measures it and its filesystem.
func gatherStorageInfo(ctx context.Context) (*storageInfo, error) {
	st, err := openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	u, err := st.Usage(ctx)
	if err != nil {
		return nil, err
	}
	si := &storageInfo{
		GraphDriverName: st.Driver().Name(), GraphStatus: map[string]string{}, GraphRoot: st.Root(), RunRoot: st.RunRoot(),
		ImageStore: map[string]int{"number": u.Images}, ContainerStore: map[string]int{"number": u.Containers},
		Layers: u.Layers, Blobs: u.Blobs, BlobBytes: u.BlobBytes, LayerBytes: u.LayerBytes,
		FileLayers: u.FileLayers, FileLayerBytes: u.FileLayerBytes, BlobOnlyLayers: u.BlobOnlyLayers, BlobOnlyLayerBytes: u.BlobOnlyLayerBytes,
		SharedBytes: u.SharedBytes, ExclusiveBytes: u.ExclusiveBytes, UnusedBytes: u.UnusedBytes,
		ContainerBytes: u.ContainerBytes, Reclaimable: u.Reclaimable.Total(),
		DatabaseBytes: u.DatabaseBytes, DriverMetadataBytes: u.DriverMetadataBytes,
	}
	b, err := storagesetup.ProbeBacking(st.Root())
	if err != nil {
		return nil, err
	}
	si.BackingFS, si.BackingDevice, si.MountPoint, si.MountOptions = b.FSType, b.Device, b.MountPoint, b.MountOptions
	si.DType, si.ProjectQuota = b.DType, b.ProjectQuota
	for _, kv := range st.Driver().Status() {
		if kv[0] == "Supports d_type" {
			kv[1] = strconv.FormatBool(b.DType) // measured, not assumed
		}
		si.statusOrder = append(si.statusOrder, kv)
		si.GraphStatus[kv[0]] = kv[1]
	}
	if err := si.measure(st); err != nil {
		return nil, err
	}
	return si, nil
}

// measure fills in the space figures and the warnings.
func (si *storageInfo) measure(st *store.Store) error {
	sp, err := storagesetup.MeasureSpace(st.Root())
	if err != nil {
		return err
	}
	si.DataSpaceUsed, si.DataSpaceTotal, si.DataSpaceAvailable = sp.DataUsed, sp.DataTotal, sp.DataAvailable
	si.MetadataSpaceUsed = si.DatabaseBytes + si.DriverMetadataBytes
	si.MetadataSpaceTotal, si.MetadataSpaceAvailable = sp.DataTotal, sp.DataAvailable
	if sp.MetaTotal > 0 { // btrfs keeps metadata in block groups of its own
		si.MetadataSpaceUsed, si.MetadataSpaceTotal = sp.MetaUsed, sp.MetaTotal
		si.MetadataSpaceAvailable = sp.MetaTotal - sp.MetaUsed + sp.DataAvailable
	}
	si.InodesTotal, si.InodesAvailable = sp.InodesTotal, sp.InodesFree
	si.InodesUsed = sp.InodesTotal - sp.InodesFree
	if _, _, minFree, err := st.FreeSpace(); err == nil {
		si.MinFreeSpace = minFree
	}
	si.Warnings = si.warnings(warnPercent())
	return nil
}

// warnPercent is storage.conf's space_warn_percent, 85 by default.
func warnPercent() float64 {
	s, err := storageconf.Resolve(storageconf.Overrides{ConfigPath: globals.StorageConf, Opts: globals.StorageOpts})
	if err == nil {
		v := strings.TrimSuffix(s.DriverOpts["space_warn_percent"], "%")
		if p, err := strconv.ParseFloat(v, 64); err == nil && p > 0 {
			return p
		}
	}
	return 85
}

func (si *storageInfo) warnings(pct float64) []string {
	var w []string
	full := func(what string, used, total float64) {
		if total > 0 && used/total*100 > pct {
			w = append(w, fmt.Sprintf("%s is %.0f%% used, above the %.0f%% threshold (space_warn_percent): `kiln prune` would reclaim %s", what, used/total*100, pct, store.HumanBytes(si.Reclaimable)))
		}
	}
	full("data space", float64(si.DataSpaceUsed), float64(si.DataSpaceTotal))
	full("metadata space", float64(si.MetadataSpaceUsed), float64(si.MetadataSpaceTotal))
	full("inodes", float64(si.InodesUsed), float64(si.InodesTotal))
	if si.MinFreeSpace > 0 && si.DataSpaceAvailable < si.MinFreeSpace {
		w = append(w, fmt.Sprintf("only %s available, below min_free_space %s: writes are refused", store.HumanBytes(si.DataSpaceAvailable), store.HumanBytes(si.MinFreeSpace)))
	}
	if si.GraphDriverName == "overlay" && !si.DType {
		w = append(w, "the backing filesystem has no d_type: overlay is unreliable here (XFS needs ftype=1)")
	}
	return w
}

// printStorageInfo prints the docker-info style text.
func printStorageInfo(w io.Writer, si *storageInfo) {
	h := store.HumanBytes
	fmt.Fprintf(w, "Storage Driver: %s\n", si.GraphDriverName)
	for _, kv := range si.statusOrder {
		fmt.Fprintf(w, " %s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(w, "Graph Root: %s\nRun Root: %s\n", si.GraphRoot, si.RunRoot)
	fmt.Fprintf(w, "Backing Filesystem: %s\nBacking Device: %s\nMount Point: %s\n", si.BackingFS, si.BackingDevice, si.MountPoint)
	fmt.Fprintf(w, "Supports d_type: %v\nProject Quota: %v\n", si.DType, si.ProjectQuota)
	fmt.Fprintf(w, "Data Space Used: %s\nData Space Total: %s\nData Space Available: %s\n", h(si.DataSpaceUsed), h(si.DataSpaceTotal), h(si.DataSpaceAvailable))
	fmt.Fprintf(w, "Metadata Space Used: %s (database %s, driver %s)\n", h(si.MetadataSpaceUsed), h(si.DatabaseBytes), h(si.DriverMetadataBytes))
	fmt.Fprintf(w, "Metadata Space Total: %s\nMetadata Space Available: %s\n", h(si.MetadataSpaceTotal), h(si.MetadataSpaceAvailable))
	if si.InodesTotal > 0 {
		fmt.Fprintf(w, "Inodes Used: %d\nInodes Total: %d\nInodes Available: %d\n", si.InodesUsed, si.InodesTotal, si.InodesAvailable)
	}
	if si.MinFreeSpace > 0 {
		fmt.Fprintf(w, "Min Free Space: %s\n", h(si.MinFreeSpace))
	}
	fmt.Fprintf(w, "Images: %d\nLayers: %d\nContainers: %d\nBlobs: %d (%s)\n", si.ImageStore["number"], si.Layers, si.ContainerStore["number"], si.Blobs, h(si.BlobBytes))
	fmt.Fprintf(w, "Layer Space: %s (shared %s, exclusive %s, unused %s)\n", h(si.LayerBytes), h(si.SharedBytes), h(si.ExclusiveBytes), h(si.UnusedBytes))
	fmt.Fprintf(w, "Layers With Files: %d (%s)\nLayers Only Blobs: %d (%s; their files are made when something needs them)\n",
		si.FileLayers, h(si.FileLayerBytes), si.BlobOnlyLayers, h(si.BlobOnlyLayerBytes))
	fmt.Fprintf(w, "Container Writable Space: %s\nReclaimable: %s\n", h(si.ContainerBytes), h(si.Reclaimable))
	for _, warn := range si.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
}

// asMap gives the info as the generic map `kiln info` templates index
// with lower-case keys ({{.store.GraphDriverName}}).
func (si *storageInfo) asMap() (map[string]any, error) {
	b, err := json.Marshal(si)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	return m, json.Unmarshal(b, &m)
}
