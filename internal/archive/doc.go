// Package archive turns filesystem trees into layer tars and back: the
// diff of an overlay upper directory (read alone, once), the diff of two
// trees, applying a layer with its whiteouts inside a root that it can
// never escape, and sniffing compressed streams.
package archive
