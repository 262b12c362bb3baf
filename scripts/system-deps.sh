#!/usr/bin/env bash
# Installs the Debian packages the tests and `calico-dcos local` use: a real
# ZooKeeper (state store tests), a real etcd and etcdctl (etcd-proxy step),
# headless Chromium (status page test) and systemd's `systemd-analyze` (the manual path's
# units are checked with `systemd-analyze verify`). Skips what is already there.
set -euo pipefail
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
[ -f /usr/share/zookeeper/bin/zkServer.sh ] || need+=(zookeeperd)
command -v java >/dev/null || need+=(default-jre-headless)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ "${1:-}" = "--with-browser" ]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
fi
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
