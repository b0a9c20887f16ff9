#!/bin/sh
# Run by preload-images.service: import every archive of /kind/images.
set -eu
for archive in /kind/images/*.tar; do
  ctr --namespace=k8s.io images import --all-platforms --snapshotter=overlayfs "$archive"
done
mkdir -p /var/lib/kind-node
touch /var/lib/kind-node/images-imported
