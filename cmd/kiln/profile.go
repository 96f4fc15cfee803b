package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiles starts the profiles the hidden environment variables ask
// for, for `go tool pprof`: KILN_CPUPROFILE=FILE writes a CPU profile of
// the whole command, KILN_MEMPROFILE=FILE a heap profile (allocations)
// at its end, KILN_TRACE=FILE an execution trace (`go tool trace`: where
// the wall time goes off the CPU). The returned function ends them; a
// profile that cannot be written is reported and the command runs anyway.
func startProfiles() (stop func()) {
	cpu, mem, tr := os.Getenv("KILN_CPUPROFILE"), os.Getenv("KILN_MEMPROFILE"), os.Getenv("KILN_TRACE")
	if cpu == "" && mem == "" && tr == "" {
		return func() {}
	}
	var tf *os.File
	if tr != "" {
		var err error
		if tf, err = os.Create(tr); err == nil {
			err = trace.Start(tf)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "kiln: trace %s: %v\n", tr, err)
			tf = nil
		}
	}
	var f *os.File
	if cpu != "" {
		var err error
		if f, err = os.Create(cpu); err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "kiln: CPU profile %s: %v\n", cpu, err)
			f = nil
		}
	}
	if mem != "" {
		runtime.MemProfileRate = 64 << 10
	}
	return func() {
		if tf != nil {
			trace.Stop()
			tf.Close()
		}
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		if mem != "" {
			if err := writeHeapProfile(mem); err != nil {
				fmt.Fprintf(os.Stderr, "kiln: heap profile %s: %v\n", mem, err)
			}
		}
	}
}

func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
