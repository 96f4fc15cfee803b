package vfs

import (
	"testing"

	"github.com/kiln-build/kiln/internal/store/driver"
	"github.com/kiln-build/kiln/internal/store/driver/drivertest"
)

func TestConformance(t *testing.T) {
	drivertest.RequiresRoot(t)
	drivertest.Run(t, func(t *testing.T) driver.Driver {
		d, err := New(driver.Options{Home: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}
