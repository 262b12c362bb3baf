#!/usr/bin/env bash
# Installs the Debian packages one set-up target needs, and nothing more. Skips what is there.
#
#   scripts/system-deps.sh build   the C compiler and Python headers that build http-parser's
#                                  wheel, and Debian's venv module (before `make deps`)
#   scripts/system-deps.sh local   + etcd (`calico-dcos local` runs one etcd member on loopback)
#   scripts/system-deps.sh test    + etcdctl, ZooKeeper's jars and a headless Java (the store
#                                  and failover tests start their own ZooKeeper), headless
#                                  Chromium and chromedriver (the status page test), systemd's
#                                  `systemd-analyze` (the manual path's units are checked with
#                                  `systemd-analyze verify`), and Debian's Docker engine,
#                                  docker.io 20.10 (the docker step's tests run a real dockerd
#                                  per simulated host)
#
# DRY_RUN=1 prints what it would install and installs nothing.
#
# No system service is left running: Debian's etcd-server starts etcd on install (through
# invoke-rc.d, which asks /usr/sbin/policy-rc.d first), so the install runs with a policy that
# refuses every start (exit 101, Debian's policy-rc.d interface, invoke-rc.d(8)), and the
# service is then disabled (docker.io's docker.service and docker.socket alike). ZooKeeper
# comes as its jars (libzookeeper-java), not as Debian's `zookeeperd` service package. The
# tests start their own servers (and dockerds) on free loopback ports and their own sockets.
set -euo pipefail
target="${1:-test}"
case "$target" in build | local | test) ;; *)
  echo "usage: $0 build|local|test" >&2
  exit 2
  ;;
esac

need=()
python="$(command -v python3 || true)"
if [ -z "$python" ]; then
  need+=(python3 python3-dev python3-venv)
else
  command -v gcc >/dev/null || need+=(gcc libc6-dev)
  include="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  if [ ! -f "$include/Python.h" ] || ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$python" != /usr/bin/python3 ]; then
      echo "$python has no C headers ($include/Python.h) or no venv module; building" >&2
      echo "http-parser's wheel needs both: install them for that Python, or put" >&2
      echo "Debian's /usr/bin/python3 first on PATH (this script then installs them)." >&2
      exit 1
    fi
    [ -f "$include/Python.h" ] || need+=(python3-dev)
    "$python" -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
  fi
fi
if [ "$target" != build ]; then
  command -v etcd >/dev/null || need+=(etcd-server)
fi
if [ "$target" = test ]; then
  command -v etcdctl >/dev/null || need+=(etcd-client)
  [ -f /usr/share/java/zookeeper.jar ] || need+=(libzookeeper-java)
  [ -f /usr/share/java/slf4j-simple.jar ] || need+=(libslf4j-java)
  command -v java >/dev/null || need+=(default-jre-headless)
  # By path: another `docker` client may come first on PATH; the tests use these two.
  [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || need+=(docker.io)
  command -v chromium >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
  command -v systemd-analyze >/dev/null || need+=(systemd)
fi
if [ "${DRY_RUN:-}" = 1 ]; then
  echo "would install: ${need[*]}"
  exit 0
fi
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${need[*]}"
policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then
  saved="$(mktemp)"
  $sudo cp -p "$policy" "$saved"
fi
restore_policy() {
  if [ -n "$saved" ]; then
    $sudo cp -p "$saved" "$policy"
    rm -f "$saved"
  else
    $sudo rm -f "$policy"
  fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# calico-dcos set-up: start no service while installing\nexit 101\n' |
  $sudo tee "$policy" >/dev/null
$sudo chmod 755 "$policy"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
if [[ " ${need[*]} " == *" etcd-server "* ]]; then
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now etcd >/dev/null 2>&1 || true
  else
    $sudo update-rc.d etcd disable >/dev/null 2>&1 || true
  fi
fi
if [[ " ${need[*]} " == *" docker.io "* ]]; then
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
  else
    $sudo update-rc.d docker disable >/dev/null 2>&1 || true
  fi
fi
