#!/usr/bin/env bash
# Install the Autobahn WebSocket testsuite's fuzzing client (wstest) under a folder of this
# clone (default .autobahn), and print the path of the wstest it made.
#
#   bash scripts/install-autobahn.sh [PREFIX]
#
# Why it is this way: autobahntestsuite (PyPI) only runs on CPython 2.7, and Debian 12 no
# longer packages 2.7. Debian 11 (bullseye) still does, from the same mirror this machine's apt
# already uses. So we download bullseye's python2.7 .debs with a private apt state under
# PREFIX (the system's apt lists and installed packages are not touched), unpack them with
# `dpkg -x` into PREFIX/root, wrap the interpreter so it finds its own stdlib and libraries,
# bootstrap pip 20.3 (the last for 2.7), and install a pinned set of packages known to work
# together (newer Twisted and Automat no longer run on Python 2). Re-running is cheap: an
# existing working wstest is reused.
set -euo pipefail

prefix=${1:-.autobahn}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
wstest=$prefix/bin/wstest

if [ -x "$wstest" ] && "$wstest" --help >/dev/null 2>&1; then
    echo "$wstest"
    exit 0
fi

die() { echo "install-autobahn: $*" >&2; exit 1; }

root=$prefix/root
state=$prefix/apt
mkdir -p "$root" "$state/lists/partial" "$state/archives/partial" "$state/debs" "$prefix/bin" \
    "$prefix/wheels"

# --- 1. bullseye's python2.7 from the mirror the system's apt is set up with ---------------
mirror=$(sed -n 's|^URIs: *\([^ ]*/debian\)/*$|\1|p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | head -n 1)
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" && $NF != "" { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' \
        /etc/apt/sources.list)
fi
[ -n "$mirror" ] || die "no Debian mirror in /etc/apt/sources.list{,.d}; cannot fetch python2.7"
mirror=${mirror%/}

case "$(uname -m)" in
    x86_64) arch=amd64 triplet=x86_64-linux-gnu ;;
    aarch64) arch=arm64 triplet=aarch64-linux-gnu ;;
    *) die "unsupported machine $(uname -m)" ;;
esac

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
{
    echo "deb [signed-by=$keyring] $mirror bullseye main"
    echo "deb [signed-by=$keyring] $mirror-security bullseye-security main"
} >"$state/sources.list"

apt_private=(
    -o "Dir::Etc::SourceList=$state/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$state/lists"
    -o "Dir::Cache::Archives=$state/archives"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "APT::Architecture=$arch"
)
apt-get "${apt_private[@]}" -qq update
(
    cd "$state/debs"
    apt-get "${apt_private[@]}" -qq download \
        python2.7 python2.7-minimal python2.7-dev libpython2.7 libpython2.7-minimal \
        libpython2.7-stdlib libpython2.7-dev libffi7 libssl1.1
)
for deb in "$state"/debs/*.deb; do
    dpkg -x "$deb" "$root"
done

cat >"$prefix/bin/python2.7" <<EOF
#!/bin/sh
PYTHONHOME='$root/usr'
LD_LIBRARY_PATH='$root/usr/lib/$triplet'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export PYTHONHOME LD_LIBRARY_PATH
exec '$root/usr/bin/python2.7' "\$@"
EOF
chmod +x "$prefix/bin/python2.7"
"$prefix/bin/python2.7" -c 'import ssl, zlib, ctypes' || die "the unpacked python2.7 does not run"

# --- 2. pip for Python 2.7, then wstest and its pinned dependencies ------------------------
python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 2.7 --implementation py --abi none --platform any -d "$prefix/wheels" \
    pip==20.3.4 setuptools==44.1.1 wheel==0.37.1
# A pip wheel can run itself: python pip.whl/pip install ...
"$prefix/bin/python2.7" "$prefix"/wheels/pip-20.3.4-py2.py3-none-any.whl/pip install -q \
    --no-index "$prefix"/wheels/*.whl

py2pip=("$prefix/bin/python2.7" -m pip install -q --disable-pip-version-check)
export CFLAGS="-I$root/usr/include/python2.7 -I$root/usr/include"
"${py2pip[@]}" \
    attrs==21.4.0 autobahn==0.10.9 Automat==20.2.0 cffi==1.15.1 constantly==15.1.0 \
    cryptography==3.3.2 enum34==1.1.10 hyperlink==21.0.0 idna==2.10 incremental==16.10.1 \
    ipaddress==1.0.23 Jinja2==2.11.3 klein==17.10.0 linecache2==1.0.0 MarkupSafe==1.1.1 \
    pyasn1==0.5.1 pyasn1-modules==0.3.0 pycparser==2.21 PyHamcrest==1.10.1 pyOpenSSL==19.1.0 \
    service-identity==18.1.0 six==1.16.0 traceback2==1.4.0 Twisted==19.10.0 txaio==2.1.0 \
    typing==3.10.0.0 ujson==2.0.3 unittest2==1.1.0 Werkzeug==1.0.1 wsaccel==0.6.6 \
    zope.interface==4.6.0
"${py2pip[@]}" --no-deps --no-warn-script-location autobahntestsuite==25.10.1

# Debian's 2.7 puts pip's scripts under PREFIX/local/bin; look in both places.
script=
for candidate in "$root/usr/local/bin/wstest" "$root/usr/bin/wstest"; do
    [ -f "$candidate" ] && script=$candidate && break
done
[ -n "$script" ] || die "pip installed autobahntestsuite but no wstest script under $root/usr"
cat >"$wstest" <<EOF
#!/bin/sh
exec '$prefix/bin/python2.7' '$script' "\$@"
EOF
chmod +x "$wstest"
"$wstest" --help >/dev/null || die "$wstest does not run"
echo "$wstest"
