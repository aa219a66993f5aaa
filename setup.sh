#!/usr/bin/env bash
# Sets up bqnn on a fresh Debian machine: system packages (as root), a virtual
# environment in .venv with the CPU build of PyTorch, and bqnn itself (editable).
#
#   bash setup.sh           # what the demo needs
#   bash setup.sh --test    # also what the test suite needs (shellcheck, SLURM, munge, Chromium and chromedriver)
#
# Reads: PYTHON (interpreter for the venv, default python3), BQNN_TORCH (torch
# requirement, default torch==2.13.0: the CPU wheel on these machines; on a GPU
# cluster use e.g. BQNN_TORCH="torch==2.13.0" with your CUDA index configured).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_pkgs=()
[ -d /usr/share/datasets/fashion-mnist ] || apt_pkgs+=(dataset-fashion-mnist)
if [ "$want_test" = 1 ]; then
  command -v shellcheck >/dev/null || apt_pkgs+=(shellcheck)
  command -v slurmctld >/dev/null || apt_pkgs+=(slurm-wlm)
  command -v munged >/dev/null || apt_pkgs+=(munge)
  command -v h5dump >/dev/null || apt_pkgs+=(hdf5-tools)
  # the dashboard's and the report page's tests drive a real headless Chromium with the system's chromedriver
  command -v chromium >/dev/null || apt_pkgs+=(chromium)
  [ -x /usr/bin/chromedriver ] || apt_pkgs+=(chromium-driver)
fi
if [ "${#apt_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  else
    echo "setup.sh: missing system packages (${apt_pkgs[*]}); install them as root: apt-get install ${apt_pkgs[*]}" >&2
  fi
fi

py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch first and pinned: an unpinned torch would pull the CUDA build and its gigabytes.
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" "${BQNN_TORCH:-torch==2.13.0}"
extras="mpich"
[ "$want_test" = 1 ] && extras="mpich,dev"
.venv/bin/python -c "import bqnn, mpi4py, h5py" 2>/dev/null && [ "$want_test" = 0 ] || "${pip[@]}" -e ".[$extras]"
echo "setup.sh: ready (.venv/bin/python, bqnn $(.venv/bin/python -c 'import bqnn; print(bqnn.__version__)'))"
