package main

import "fmt"

// usageErrorf reports bad input from the command line; it exits 125 like
// every other error, and exists so that call sites read as what they are.
func usageErrorf(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}
