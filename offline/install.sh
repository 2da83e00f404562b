#!/bin/sh
# Install the byok-ceremony offline bundle into a new virtual environment, with no network.
#
#   sh install.sh [--debs] DIR
#
# First every file of the bundle is checked against SHA256SUMS: a changed, missing or extra file is
# refused, by name, before anything is created. Then DIR is made with Python's venv and the wheels
# are installed with pip's index off and every hash required (requirements.lock), ignoring all pip
# configuration on this machine (user, system, environment). --debs first installs the Debian
# packages the bundle carries (SoftHSM2, OpenSC, python3-venv) that are not installed yet (root).
# PYTHON=/path/to/python3.X chooses the interpreter (default: python3).
set -eu

PYTHON=${PYTHON:-python3}
MARKER=byok-ceremony-bundle.json

refuse() {
    echo "install.sh: refused: $1" >&2
    if [ -n "${2:-}" ]; then echo "  $2" >&2; fi
    exit 1
}

usage() {
    echo "usage: sh install.sh [--debs] DIR   (DIR: a new directory for the installation)"
}

debs=0
while [ $# -gt 0 ]; do
    case "$1" in
        --debs) debs=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -*) usage >&2; refuse "unknown option $1." ;;
        *) break ;;
    esac
done
if [ $# -ne 1 ] || [ -z "$1" ]; then
    usage >&2
    exit 2
fi
case "$1" in
    /*) target=$1 ;;
    *) target=$(pwd)/$1 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

# 1. The bundle is exactly what SHA256SUMS lists: nothing changed, missing or added.
again="Copy the bundle again from its .tar, check its identity, and rerun."
[ -f SHA256SUMS ] || refuse "SHA256SUMS is missing from $here." "$again"
listed=""
while IFS= read -r line || [ -n "$line" ]; do
    digest=${line%%  *}
    name=${line#*  }
    case "$digest" in
        *[!0-9a-f]*) refuse "SHA256SUMS has a line that is not '<sha256>  <file>': $line" "$again" ;;
    esac
    [ ${#digest} -eq 64 ] || refuse "SHA256SUMS has a line that is not '<sha256>  <file>': $line" "$again"
    case "$name" in
        ""|/*|..|../*|*/../*|*/..|SHA256SUMS) refuse "SHA256SUMS names a path outside the bundle: $name" "$again" ;;
    esac
    if [ ! -f "$name" ] || [ -L "$name" ]; then
        refuse "missing: $name (listed in SHA256SUMS, not in the bundle)." "$again"
    fi
    actual=$(sha256sum -- "$name")
    [ "${actual%% *}" = "$digest" ] || refuse "changed: $name (its SHA-256 is not the one in SHA256SUMS)." "$again"
    listed="$listed
$name"
done < SHA256SUMS
extra=$(find . -mindepth 1 ! -type d ! -path ./SHA256SUMS | sed 's|^\./||' | while IFS= read -r name; do
    if ! printf '%s\n' "$listed" | grep -Fxq -- "$name"; then
        printf '%s\n' "$name"
        break
    fi
done)
[ -z "$extra" ] || refuse "extra file: $extra (not listed in SHA256SUMS)." "Remove it, or copy the bundle again from its .tar."
identity=$(sha256sum SHA256SUMS)
identity=${identity%% *}
echo "Bundle verified: every file matches SHA256SUMS."
echo "Bundle identity (SHA-256 of SHA256SUMS): $identity"
echo "  Compare it with the identity written down when the bundle was made."

# 2. Nothing is installed over anything.
[ ! -e "$target" ] || refuse "$target exists; install.sh installs only into a new directory." "Give a new directory."

# 3. Debian packages, on request: only those not installed yet; never a downgrade.
if [ "$debs" = 1 ]; then
    [ -d debs ] || refuse "this bundle carries no Debian packages." "Make it with: make bundle DEBS=1"
    [ "$(id -u)" = 0 ] || refuse "--debs installs Debian packages and needs root." "Run it as root, or without --debs."
    missing=""
    for deb in debs/*.deb; do
        package=$(dpkg-deb -f "$deb" Package)
        status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
        [ "$status" = "install ok installed" ] || missing="$missing $deb"
    done
    if [ -n "$missing" ]; then
        echo "Installing Debian packages:$missing"
        # shellcheck disable=SC2086
        dpkg -i $missing
    else
        echo "The bundle's Debian packages are installed already."
    fi
fi

# 4. A Python that fits the wheels.
found=$(command -v "$PYTHON" 2>/dev/null) || refuse "$PYTHON is not installed." "Install Python 3 (Debian: python3 and python3-venv), or set PYTHON=/path/to/python3.X."
PYTHON=$("$found" -I -c 'import sys; print(sys.executable)') || refuse "$found is not a working Python." "Set PYTHON=/path/to/python3.X."
unfit=$("$PYTHON" -I -c 'import json, sys, sysconfig
wanted = json.load(open("bundle.json"))
have = "%d.%d.%d" % sys.version_info[:3]
at_least = tuple(int(n) for n in wanted["python_min"].split("."))
if have.rsplit(".", 1)[0] != wanted["python"] or sys.version_info[:3] < at_least:
    print("Python %s or a later %s.x; %s is %s" % (wanted["python_min"], wanted["python"], sys.executable, have))
elif sysconfig.get_platform() != wanted["platform"]:
    print("platform %s; this machine is %s" % (wanted["platform"], sysconfig.get_platform()))') || refuse "$PYTHON cannot read bundle.json." "Use Python 3 (PYTHON=/path/to/python3.X)."
[ -z "$unfit" ] || refuse "the wheels need $unfit." "Use such a Python (PYTHON=/path/to/python3.X), or make the bundle on a machine like this one."
"$PYTHON" -I -c 'import venv, ensurepip' 2>/dev/null || refuse "$PYTHON has no venv module with ensurepip." "Debian: install python3-venv (sh install.sh --debs DIR installs it from a bundle made with DEBS=1)."

# 5. The virtual environment, installed from the bundle's wheels only.
clean_env() {
    env -i PATH="/usr/local/bin:/usr/bin:/bin" HOME="${HOME:-/}" LANG=C.UTF-8 PIP_CONFIG_FILE=/dev/null "$@"
}
trap 'rm -rf "$target"' EXIT  # a failed installation leaves nothing behind
trap 'exit 1' INT TERM HUP
clean_env "$PYTHON" -I -m venv "$target"
clean_env "$target/bin/python" -I -m pip --isolated --no-input --disable-pip-version-check \
    install --quiet --no-index --find-links "$here/wheels" --only-binary :all: --require-hashes \
    --no-cache-dir --requirement "$here/requirements.lock"
clean_env "$target/bin/python" -I -c 'import sys, json
from ceremony.software import write_bundle_marker
print(write_bundle_marker(json.load(open(sys.argv[1])), sys.argv[2]))' "$here/bundle.json" "$identity" >/dev/null
trap - EXIT

version=$("$PYTHON" -I -c 'import json; print(json.load(open("bundle.json"))["version"])')
echo
echo "Installed byok-ceremony $version into $target (no network used)."
echo "  $target/bin/ceremony --help"
echo "  $target/bin/ceremony run plan.toml --workspace /media/ceremony --phases 00   # this side's preflight"
echo "  $target/bin/ceremony rehearse --out ~/rehearsal                             # a rehearsal on SoftHSM2"
echo "Each side's preflight records the bundle identity $identity."
if ! command -v softhsm2-util >/dev/null 2>&1 || ! command -v pkcs11-tool >/dev/null 2>&1; then
    if [ -d debs ]; then
        echo "SoftHSM2 or OpenSC is missing here: sh install.sh --debs DIR installs them from debs/ (root)."
    else
        echo "SoftHSM2 or OpenSC is missing here: rehearsals need them (Debian: softhsm2, opensc)."
    fi
fi
