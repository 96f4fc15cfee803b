# shellcheck shell=bash
# Makes the images Buildah's system tests pull, from Debian packages, and
# puts them in a local registry through its HTTP API (curl), so that every
# digest is the same on every run and no other tool's image handling is
# involved. Sourced by scripts/buildah-tests.sh, which sets WORK and
# REGISTRY (host:port of a plain-HTTP docker-registry).
#
# Each name is stored under its registry's host as the first path
# component (docker.io/library/busybox is REGISTRY/docker.io/library/busybox);
# registries.conf sends each host there.
#
# What stands in for what:
#   docker.io/library/busybox   busybox-static, a list of seven platforms
#                               (the host's binary in each; tests copy
#                               files from other platforms, never run them)
#   docker.io/library/alpine    the same with /etc/apk/arch and
#                               /etc/alpine-release, seven platforms
#   docker.io/library/{debian,ubuntu}  debootstrap --variant=minbase bookworm
#   docker.io/library/{centos:7,centos:latest,docker:latest}, quay.io/libpod/alpine_nginx,
#   quay.io/libpod/testimage:{20221018,20210610}, registry.k8s.io/pause
#                               busybox-based
#   quay.io/libpod/registry:2.8 Debian's docker-registry with an
#                               /entrypoint.sh as the real image has;
#                               :volume_omitted without the directory of
#                               its volume /var/lib/registry

img_epoch=1666051200 # 2022-10-18, the date of Buildah's SAFEIMAGE
img_created=2022-10-18T00:00:00Z

# img_blob FILE: stores FILE in $WORK/images/blobs by digest, prints the digest.
img_blob() {
	local d
	d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
	mkdir -p "$WORK/images/blobs"
	[ -e "$WORK/images/blobs/$d" ] || cp "$1" "$WORK/images/blobs/$d"
	echo "$d"
}

# img_layer DIR: a gzip'd tar of DIR, made the same way every time;
# prints "DIGEST DIFFID SIZE".
img_layer() {
	local dir=$1 tmp=$WORK/images/tmp
	mkdir -p "$tmp"
	tar --sort=name --mtime=@$img_epoch --owner=0 --group=0 --numeric-owner \
		--format=gnu -C "$dir" -cf "$tmp/layer.tar" .
	gzip -n -c "$tmp/layer.tar" >"$tmp/layer.tar.gz"
	local diffid digest
	diffid=sha256:$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
	digest=$(img_blob "$tmp/layer.tar.gz")
	echo "$digest $diffid $(stat -c %s "$tmp/layer.tar.gz")"
}

# img_json FILE JSON: writes compact JSON to FILE, stores it, prints
# "DIGEST SIZE".
img_json() {
	jq -c . <<<"$2" | tr -d '\n' >"$1"
	echo "$(img_blob "$1") $(stat -c %s "$1")"
}

# img_busybox_rootfs DIR [symlinks]: a busybox root as Docker's busybox
# image has it (hard links in /bin), or as Alpine has it (symlinks at
# busybox's --list-full paths).
img_busybox_rootfs() {
	local dir=$1 style=${2:-hardlinks} a
	rm -rf "$dir"
	mkdir -p "$dir"/{bin,etc,home,root,tmp,usr/bin,usr/sbin,sbin,var/spool/mail,var/www,dev,proc,sys}
	chmod 1777 "$dir/tmp"
	chmod 700 "$dir/root"
	cp /bin/busybox "$dir/bin/busybox"
	if [ "$style" = symlinks ]; then
		for a in $(/bin/busybox --list-full); do
			[ -e "$dir/$a" ] || ln -s /bin/busybox "$dir/$a"
		done
	else
		for a in $(/bin/busybox --list); do
			[ -e "$dir/bin/$a" ] || ln "$dir/bin/busybox" "$dir/bin/$a"
		done
	fi
	cat >"$dir/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
	cat >"$dir/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
EOF
	# Debian's busybox has no printenv applet; the images it stands in for do.
	cat >"$dir/usr/bin/printenv" <<'PRINTENV'
#!/bin/sh
[ $# -gt 0 ] || exec env
status=0
for name; do
	if eval "[ -n \"\${$name+set}\" ]"; then eval "printf '%s\n' \"\$$name\""; else status=1; fi
done
exit $status
PRINTENV
	chmod 755 "$dir/usr/bin/printenv"
	echo 'root:*::0:::::' >"$dir/etc/shadow"
	chmod 640 "$dir/etc/shadow"
}

# img_push_blob REPO DIGEST: uploads a stored blob unless the repository
# has it.
img_push_blob() {
	local repo=$1 d=$2 loc
	if curl -sf -o /dev/null -I "http://$REGISTRY/v2/$repo/blobs/$d"; then
		return
	fi
	loc=$(curl -sf -D - -o /dev/null -X POST "http://$REGISTRY/v2/$repo/blobs/uploads/" |
		tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	case $loc in http*) ;; *) loc=http://$REGISTRY$loc ;; esac
	case $loc in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
	curl -sf -X PUT -H 'Content-Type: application/octet-stream' \
		--data-binary "@$WORK/images/blobs/$d" "$loc" >/dev/null
}

# img_push_manifest REPO REF MEDIATYPE DIGEST
img_push_manifest() {
	curl -sf -X PUT -H "Content-Type: $3" --data-binary "@$WORK/images/blobs/$4" \
		"http://$REGISTRY/v2/$1/manifests/$2" >/dev/null
}

# img_image ROOTFS PLATFORM CONFIGJSON: one Docker schema 2 image of
# ROOTFS for PLATFORM (os/arch[/variant]); CONFIGJSON is the "config"
# object. Sets img_manifest="DIGEST SIZE" and img_blobs (the blobs it uses).
img_image() {
	local rootfs=$1 platform=$2 cfg=$3 os arch variant layer config
	IFS=/ read -r os arch variant <<<"$platform"
	read -r -a layer <<<"$(img_layer "$rootfs")"
	read -r -a config <<<"$(img_json "$WORK/images/tmp/config.json" "$(jq -n \
		--arg os "$os" --arg arch "$arch" --arg variant "$variant" --arg created "$img_created" \
		--arg diffid "${layer[1]}" --argjson cfg "$cfg" '{
			architecture: $arch, os: $os, config: $cfg, created: $created,
			rootfs: {type: "layers", diff_ids: [$diffid]},
			history: [{created: $created, created_by: "/bin/sh -c #(nop) ADD file:rootfs in / "}]
		} + (if $variant == "" then {} else {variant: $variant} end)')")"
	read -r -a img_manifest <<<"$(img_json "$WORK/images/tmp/manifest.json" "$(jq -n \
		--arg cd "${config[0]}" --argjson cs "${config[1]}" \
		--arg ld "${layer[0]}" --argjson ls "${layer[2]}" '{
			schemaVersion: 2,
			mediaType: "application/vnd.docker.distribution.manifest.v2+json",
			config: {mediaType: "application/vnd.docker.container.image.v1+json", size: $cs, digest: $cd},
			layers: [{mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: $ls, digest: $ld}]
		}')")"
	img_blobs="${layer[0]} ${config[0]}"
}

# img_publish NAME... : pushes the image (or list) last made to each
# name (HOST/REPO:TAG).
img_publish() {
	local name repo tag b
	for name in "$@"; do
		repo=${name%:*} tag=${name##*:}
		for b in $img_all_blobs; do img_push_blob "$repo" "$b"; done
		for b in $img_sub_manifests; do
			img_push_manifest "$repo" "$b" application/vnd.docker.distribution.manifest.v2+json "$b"
		done
		img_push_manifest "$repo" "$tag" "$img_top_type" "$img_top"
	done
}

# img_single ROOTFS CONFIGJSON: an image for this machine alone.
img_single() {
	img_image "$1" "linux/$(img_host_arch)" "$2"
	img_all_blobs=$img_blobs img_sub_manifests="" img_top=${img_manifest[0]}
	img_top_type=application/vnd.docker.distribution.manifest.v2+json
}

# img_list ROOTFS CONFIGJSON PLATFORM=APKARCH...: a manifest list, one
# image per platform; the rootfs gets /etc/apk/arch when APKARCH is set.
img_list() {
	local rootfs=$1 cfg=$2 p entries=() arch apk
	img_all_blobs="" img_sub_manifests=""
	shift 2
	for p in "$@"; do
		apk=${p#*=} p=${p%%=*}
		if [ -n "$apk" ]; then
			mkdir -p "$rootfs/etc/apk"
			echo "$apk" >"$rootfs/etc/apk/arch"
		fi
		img_image "$rootfs" "$p" "$cfg"
		img_all_blobs="$img_all_blobs $img_blobs"
		img_sub_manifests="$img_sub_manifests ${img_manifest[0]}"
		IFS=/ read -r os arch variant <<<"$p"
		entries+=("$(jq -n --arg d "${img_manifest[0]}" --argjson s "${img_manifest[1]}" \
			--arg os "$os" --arg arch "$arch" --arg variant "$variant" '{
				mediaType: "application/vnd.docker.distribution.manifest.v2+json", size: $s, digest: $d,
				platform: ({architecture: $arch, os: $os} + (if $variant == "" then {} else {variant: $variant} end))
			}')")
	done
	local list
	read -r -a list <<<"$(img_json "$WORK/images/tmp/list.json" "$(printf '%s\n' "${entries[@]}" | jq -s '{
		schemaVersion: 2,
		mediaType: "application/vnd.docker.distribution.manifest.list.v2+json",
		manifests: .
	}')")"
	img_top=${list[0]} img_top_type=application/vnd.docker.distribution.manifest.list.v2+json
}

img_host_arch() {
	case $(uname -m) in
	x86_64) echo amd64 ;;
	aarch64) echo arm64 ;;
	*) uname -m ;;
	esac
}

img_path_env='"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"'

# img_debian_rootfs DIR: a debootstrap minbase of bookworm, kept as a
# tarball in $WORK/cache between runs. Returns 1 when debootstrap fails.
img_debian_rootfs() {
	local dir=$1 cache=$WORK/cache/debian-bookworm-minbase.tar
	if [ ! -s "$cache" ]; then
		local tmp=$WORK/images/debootstrap
		rm -rf "$tmp"
		if ! debootstrap --variant=minbase bookworm "$tmp" http://deb.debian.org/debian >"$WORK/images/debootstrap.log" 2>&1; then
			echo "debootstrap failed (see $WORK/images/debootstrap.log); no debian/ubuntu images" >&2
			rm -rf "$tmp"
			return 1
		fi
		rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* "$tmp"/dev/*
		tar --numeric-owner -C "$tmp" -cf "$cache.tmp" . && mv "$cache.tmp" "$cache"
		rm -rf "$tmp"
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	tar --numeric-owner -C "$dir" -xf "$cache"
}

# img_all: makes and publishes every image.
img_all() {
	local r=$WORK/images/rootfs host
	host=$(img_host_arch)
	rm -rf "$WORK/images/tmp" && mkdir -p "$WORK/images/tmp" "$WORK/cache"

	img_busybox_rootfs "$r"
	img_list "$r" "{\"Env\":[$img_path_env],\"Cmd\":[\"sh\"]}" \
		"linux/$host=" linux/arm/v6= linux/arm/v7= linux/arm64/v8= linux/386= linux/ppc64le= linux/s390x=
	[ "$host" = amd64 ] || echo "note: the busybox list's other platforms hold this machine's busybox" >&2
	img_publish docker.io/library/busybox:latest docker.io/library/busybox:glibc \
		docker.io/library/busybox:musl docker.io/library/busybox:1.35

	img_busybox_rootfs "$r" symlinks
	# Alpine's directory skeleton, which tests write into (/usr/local,
	# /var/lib: bud 'copy to symlink', 'WORKDIR isa symlink').
	mkdir -p "$r"/usr/local/bin "$r"/usr/local/lib "$r"/usr/local/share "$r"/var/lib "$r"/var/cache \
		"$r"/var/log "$r"/var/spool "$r"/var/opt "$r"/home "$r"/root "$r"/mnt "$r"/media "$r"/opt "$r"/srv "$r"/run \
		"$r"/etc/ssl/certs
	mkdir -p -m 1777 "$r"/tmp "$r"/var/tmp
	printf '127.0.0.1\tlocalhost localhost.localdomain\n::1\t\tlocalhost localhost.localdomain\n' >"$r/etc/hosts"
	echo 3.16.2 >"$r/etc/alpine-release"
	printf 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.16.2\nPRETTY_NAME="Alpine Linux v3.16"\n' >"$r/etc/os-release"
	img_list "$r" "{\"Env\":[$img_path_env],\"Cmd\":[\"/bin/sh\"]}" \
		"linux/amd64=x86_64" linux/arm/v6=armhf linux/arm/v7=armv7 linux/arm64/v8=aarch64 \
		linux/386=x86 linux/ppc64le=ppc64le linux/s390x=s390x
	img_publish docker.io/library/alpine:latest docker.io/library/alpine:3.16 \
		quay.io/libpod/alpine:latest

	mkdir -p "$r/usr/share/nginx/html" "$r/etc/nginx"
	echo '<h1>alpine_nginx</h1>' >"$r/usr/share/nginx/html/index.html"
	echo x86_64 >"$r/etc/apk/arch"
	img_single "$r" "{\"Env\":[$img_path_env],\"Cmd\":[\"/bin/sh\"],\"ExposedPorts\":{\"80/tcp\":{}}}"
	img_publish quay.io/libpod/alpine_nginx:latest

	img_busybox_rootfs "$r"
	mkdir -p "$r/home/podman"
	echo 20221018 >"$r/home/podman/testimage-id"
	# A list of the real one's four platforms (bud --all-platforms tests
	# intersect it with alpine's); each holds this machine's busybox.
	img_list "$r" "{\"Env\":[$img_path_env],\"Cmd\":[\"/bin/echo\",\"This container is intended for podman CI testing\"],\"WorkingDir\":\"/home/podman\",\"Labels\":{\"created_at\":\"$img_created\",\"created_by\":\"test/system/build-testimage\"}}" \
		"linux/$host=" linux/arm64/v8= linux/ppc64le= linux/s390x=
	img_publish quay.io/libpod/testimage:20221018
	echo 20210610 >"$r/home/podman/testimage-id"
	img_single "$r" "{\"Env\":[$img_path_env],\"Cmd\":[\"/bin/echo\",\"This container is intended for podman CI testing\"],\"WorkingDir\":\"/home/podman\"}"
	img_publish quay.io/libpod/testimage:20210610

	img_busybox_rootfs "$r"
	echo 'CentOS Linux release 7 (stand-in)' >"$r/etc/centos-release"
	img_single "$r" "{\"Env\":[$img_path_env],\"Cmd\":[\"/bin/sh\"]}"
	img_publish docker.io/library/centos:7 docker.io/library/centos:latest docker.io/library/docker:latest

	# pause is older than the rest, as the real one is (images --filter since=).
	rm -rf "$r" && mkdir -p "$r"
	cp /bin/busybox "$r/pause"
	img_created=2021-03-16T00:00:00Z img_single "$r" '{"Entrypoint":["/pause"]}'
	img_publish registry.k8s.io/pause:latest registry.k8s.io/pause:3.5

	img_busybox_rootfs "$r"
	mkdir -p "$r/etc/docker/registry" "$r/var/lib/registry" "$r/lib64" "$r/lib/x86_64-linux-gnu"
	cp /usr/bin/docker-registry "$r/bin/registry"
	local lib
	for lib in $(ldd /usr/bin/docker-registry | grep -o '/[^ ]*'); do
		mkdir -p "$r$(dirname "$lib")"
		cp -L "$lib" "$r$lib"
	done
	cp /etc/docker/registry/config.yml "$r/etc/docker/registry/config.yml" 2>/dev/null ||
		printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\nhttp:\n  addr: :5000\n' >"$r/etc/docker/registry/config.yml"
	cat >"$r/entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac
exec "$@"
EOF
	chmod 755 "$r/entrypoint.sh"
	img_single "$r" '{"Env":['"$img_path_env"'],"Entrypoint":["/entrypoint.sh"],"Cmd":["/etc/docker/registry/config.yml"],"ExposedPorts":{"5000/tcp":{}},"Volumes":{"/var/lib/registry":{}}}'
	img_publish quay.io/libpod/registry:2.8
	# The same with its volume's directory left out of the layer.
	rm -rf "$r/var/lib/registry"
	img_single "$r" '{"Env":['"$img_path_env"'],"Entrypoint":["/entrypoint.sh"],"Cmd":["/etc/docker/registry/config.yml"],"ExposedPorts":{"5000/tcp":{}},"Volumes":{"/var/lib/registry":{}}}'
	img_publish quay.io/libpod/registry:volume_omitted

	if img_debian_rootfs "$r"; then
		img_single "$r" "{\"Env\":[$img_path_env],\"Cmd\":[\"bash\"]}"
		img_publish docker.io/library/debian:latest docker.io/library/debian:bookworm \
			docker.io/library/ubuntu:latest docker.io/library/ubuntu:22.04
	fi
	rm -rf "$r" "$WORK/images/tmp"
}
