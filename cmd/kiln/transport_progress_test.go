package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/vbauerster/mpb/v8"

	"github.com/kiln-build/kiln/internal/transport"
)

func progressEvents(p *copyProgress) {
	prog := p.progress()
	if prog == nil {
		return
	}
	cb := prog.Event
	layer, cfg, skipped := digest.FromString("layer"), digest.FromString("config"), digest.FromString("skipped")
	cb(transport.ProgressEvent{Digest: skipped, Size: 10, Done: 10, State: transport.ProgressSkipped})
	cb(transport.ProgressEvent{Digest: cfg, Size: 5, State: transport.ProgressStarted, Config: true})
	cb(transport.ProgressEvent{Digest: layer, Size: 2048, State: transport.ProgressStarted})
	cb(transport.ProgressEvent{Digest: cfg, Size: 5, Done: 5, State: transport.ProgressRunning, Config: true})
	cb(transport.ProgressEvent{Digest: cfg, Size: 5, Done: 5, State: transport.ProgressDone, Config: true})
	cb(transport.ProgressEvent{Digest: layer, Size: 2048, Done: 1024, State: transport.ProgressRunning})
	cb(transport.ProgressEvent{Digest: layer, Size: 2048, Done: 2048, State: transport.ProgressDone})
	prog.Done(nil)
	p.finish()
}

// TestTransportProgress checks the three ways progress is shown: plain
// lines off a terminal, bars on one, nothing when quiet.
func TestTransportProgress(t *testing.T) {
	var plain bytes.Buffer
	progressEvents(newCopyProgress(&plain, false))
	want := "Getting image source signatures\n" +
		"Copying blob " + digest.FromString("skipped").String() + " skipped: already exists\n" +
		"Copying config " + digest.FromString("config").String() + " done\n" +
		"Copying blob " + digest.FromString("layer").String() + " done\n" +
		"Writing manifest to image destination\n"
	if plain.String() != want {
		t.Errorf("plain progress:\n%s\nwant:\n%s", plain.String(), want)
	}

	var quiet bytes.Buffer
	progressEvents(newCopyProgress(&quiet, true))
	if quiet.Len() != 0 {
		t.Errorf("quiet progress printed %q", quiet.String())
	}

	var tty bytes.Buffer
	p := &copyProgress{w: &tty}
	p.useBars(mpb.New(mpb.WithOutput(&tty), mpb.WithWidth(80), mpb.WithAutoRefresh()))
	progressEvents(p)
	out := tty.String()
	for _, s := range []string{"Getting image source signatures", "Copying blob sha256:" + digest.FromString("layer").Encoded()[:12], "Copying config sha256:", "done", "skipped: already exists", "Writing manifest"} {
		if !strings.Contains(out, s) {
			t.Errorf("bars lack %q:\n%s", s, out)
		}
	}
}
