#!/usr/bin/env bash
# The Debian packages that `make test` and `make demo` need, installed when missing.
#
#   scripts/system_packages.sh [PYTHON]      (the Makefile runs it before anything else; PYTHON defaults to python3)
#
# Each package is checked by the command the code runs (or by dpkg when it has no command). When something is
# missing it is installed with apt-get if this runs as root or with passwordless sudo; otherwise the script stops
# (exit 1) and prints the one command to run. Nothing is installed when everything is present.
set -euo pipefail

PYTHON=${1:-python3}
missing=()

need_cmd() {  # need_cmd COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need_pkg() {  # need_pkg PACKAGE (a package without a command of its own; checked only where dpkg exists)
    if command -v dpkg-query >/dev/null 2>&1; then
        dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || missing+=("$1")
    fi
}

check() {
    missing=()
    need_cmd espeak-ng espeak-ng  # speech in tests/unit/test_audio.py, tests/e2e, wavlm.synth and the demo
    need_cmd flite flite          # the flite voices of wavlm.synth (tests/unit/test_synth.py, tests/e2e)
    need_cmd sox sox              # reverberation and pitch shifts in wavlm.synth
    need_pkg libsox-fmt-all       # sox's optional file formats (mp3, ogg, ...)
    need_cmd unzip unzip          # unpacking downloaded corpora by hand
    need_cmd c++ g++              # torch.compile (inductor) builds C++ kernels: tests/slow
    need_cmd make make            # .ci/run calls `make test`
    # `python3 -m venv` needs ensurepip, and inductor needs Python.h; Debian splits both off the interpreter
    if command -v "$PYTHON" >/dev/null 2>&1; then
        "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
        "$PYTHON" -c "import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))" \
            >/dev/null 2>&1 || missing+=(python3-dev)
    else
        missing+=(python3 python3-venv python3-dev)
    fi
}

check
[ ${#missing[@]} -eq 0 ] && exit 0

packages="${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system_packages: missing $packages, and this machine has no apt-get: install them with its package manager" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "system_packages: missing Debian packages: $packages" >&2
    echo "system_packages: run this once, then run make again:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends $packages" >&2
    exit 1
fi

echo "system_packages: installing $packages"
export DEBIAN_FRONTEND=noninteractive
# several checkouts may run this at once: wait for the dpkg lock instead of failing
apt=(apt-get -q -o DPkg::Lock::Timeout=300)
"${sudo[@]}" "${apt[@]}" update -qq
"${sudo[@]}" "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"

check
if [ ${#missing[@]} -gt 0 ]; then
    echo "system_packages: still missing after apt-get install: ${missing[*]}" >&2
    exit 1
fi
