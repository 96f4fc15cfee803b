// Package images holds what kiln does to whole images: pull them into the
// store (with Buildah's --pull policies), push them and the manifest lists
// kept in the store, add to those lists, remove images (a name, or the
// image with the containers that use it), select them with the filters of
// `images` and `prune`, share build steps through a registry (the remote
// build cache), and export an image's root filesystem.
//
// It wires the store to the transports: the store's image sources and
// destinations satisfy transport's interfaces by shape, and this package
// calls transport.Copy between them. It never prints or exits: a copy
// shows itself through a Progress, warnings go to a *slog.Logger, and the
// caller prints what a function returns.
package images
