package dockerfile

import (
	"fmt"
	"sync"
	"time"

	units "github.com/docker/go-units"
	"golang.org/x/sys/unix"
)

// rusageMu serialises the measurements: the usage of children is the
// process's, so two RUN steps measured at once would count each other.
var rusageMu sync.Mutex

// usageMark is the resource usage of kiln's children when a RUN started.
type usageMark struct {
	start time.Time
	ru    unix.Rusage
}

// startUsage marks the usage of kiln's finished children now.
func startUsage() usageMark {
	m := usageMark{start: time.Now()}
	rusageMu.Lock()
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &m.ru)
	rusageMu.Unlock()
	return m
}

// since formats the children's usage since m as Buildah's --log-rusage
// does (pkg/rusage FormatDiff): CPU times, wall time, blocks read and
// written.
func (m usageMark) since() string {
	var now unix.Rusage
	rusageMu.Lock()
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &now)
	rusageMu.Unlock()
	tv := func(t unix.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return fmt.Sprintf("%s(system) %s(user) %s(elapsed) %s input %s output",
		(tv(now.Stime) - tv(m.ru.Stime)).Round(time.Millisecond), (tv(now.Utime) - tv(m.ru.Utime)).Round(time.Millisecond),
		time.Since(m.start).Round(time.Millisecond),
		units.HumanSize(float64((now.Inblock-m.ru.Inblock)*512)), units.HumanSize(float64((now.Oublock-m.ru.Oublock)*512)))
}
