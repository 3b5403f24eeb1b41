#!/usr/bin/env bash
# Prepares this machine to run agentsh-bench's local targets: installs the container engine and the
# tools the harness shells out to, and writes the podman settings this kind of host needs.
# Idempotent: safe to run before every CI run.
#
# Why each podman setting (measured on this kind of machine, see README "Host quirks"):
#   cgroup_manager=cgroupfs  PID 1 is not systemd
#   events_logger=file       no journald
#   runtime=runc             crun refuses the hybrid cgroup layout ("cgroups in hybrid mode")
#   default_ulimits          root lacks CAP_SYS_RESOURCE, so podman's defaults fail with setrlimit EPERM
set -euo pipefail

# podman+runc+catatonit: the local targets (catatonit is podman's --init); mmdebstrap: their image;
# openssh-client: the control channel; openssh-server: the exe.dev stand-in of the tests (never started
# as a service); curl, gcc, pkg-config, libseccomp-dev: obtaining agentsh (release download or cgo build);
# python3: the stand-in's JSON; hyperfine: the driver bench's reference; chromium: tests/html_report.rs
# opens the HTML report in it (headless) to check it renders without console errors.
packages=(podman runc catatonit mmdebstrap openssh-client openssh-server curl gcc make pkg-config libseccomp-dev python3 python3-venv hyperfine chromium)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No service may start from a package install (openssh-server would listen on the host).
  policy=/usr/sbin/policy-rc.d
  had_policy=0; [[ -e $policy ]] && had_policy=1
  ((had_policy)) || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; }
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ((had_policy)) || rm -f "$policy"
fi

conf=/etc/containers/containers.conf
want='# written by agentsh-bench scripts/setup-host.sh
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
'
if ! printf '%s' "$want" | cmp -s - "$conf"; then
  mkdir -p /etc/containers
  printf '%s' "$want" >"$conf"
  echo "setup-host: wrote $conf"
fi

# An independent HdrHistogram reader (the Python package from PyPI) for the tests that check our
# .hlog files open outside this harness; in a venv under the cache, keyed by nothing but its name.
venv="${AGENTSH_BENCH_CACHE:-$HOME/.cache/agentsh-bench}/venv"
if ! "$venv/bin/python" -c 'import hdrh' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q hdrhistogram
  echo "setup-host: installed the hdrhistogram Python package in $venv"
fi

# The host's sshd is never started: targets are reached through `sshd -i` inside each container.
podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}' >/dev/null
echo "setup-host: ok ($(podman --version), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}'))"
