package main

import (
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// timestamp is --timestamp when given, else SOURCE_DATE_EPOCH when set,
// else nil: the time reproducible images are made with.
func timestamp(cmd *cobra.Command, secs int64) (*time.Time, error) {
	if cmd.Flags().Changed("timestamp") {
		t := time.Unix(secs, 0).UTC()
		return &t, nil
	}
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, usageErrorf("bad SOURCE_DATE_EPOCH %q: want seconds since the epoch", v)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}
