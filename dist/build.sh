#!/usr/bin/env bash
# Builds the release archives students download, with SHA-256 sums, into
# one directory (default dist/out, not committed):
#
#   udpchat-VERSION-linux-x86_64.tar.gz    static (musl): any Linux, no libraries
#   udpchat-VERSION-linux-aarch64.tar.gz   static (musl): a Raspberry Pi as class server
#   udpchat-VERSION-windows-x86_64.zip     udpchat.exe, udpchat-relay.exe, udpchat-conform.exe
#   SHA256SUMS
#
# Each archive holds udpchat, udpchat-relay, udpchat-conform (to check a
# homework relay or client against PROTOCOL.md) and STUDENTS.txt (how to run it,
# the firewall, "no relay answering"; English and Chinese). macOS is not
# built here (it cannot be linked without Apple's SDK): .ci/run lints both
# Apple targets and the README says how a Mac user builds the client.
#
# `--version` of every binary shows the commit: this script sets
# UDPCHAT_COMMIT for its builds (ordinary builds say "commit unknown", so
# a new commit never forces a rebuild during development).
#
# Usage:
#   dist/build.sh              build the archives into dist/out
#   dist/build.sh --smoke      then show the Linux x86_64 archive runs on a
#                              clean root: a chroot of an empty directory
#                              holding only what the archive unpacks to (no
#                              libc, no Rust), in its own network namespace:
#                              --version, a relay and two piped clients
#                              chatting on loopback; the same for the
#                              aarch64 build under qemu-aarch64 (Debian's
#                              qemu-user) and the Windows exe's --version
#                              under wine, each if installed
#   OUT=/some/dir dist/build.sh
#
# Needs: rustup (adds the targets), gcc (links the x86_64 musl build),
# gcc-aarch64-linux-gnu or the toolchain's rust-lld (aarch64),
# gcc-mingw-w64-x86-64 (Windows), zip; as root on Debian it installs the
# missing packages. Build one target at a time (CARGO_BUILD_JOBS is
# respected); about 2-4 minutes per target on 2 cores.
set -euo pipefail

cd "$(dirname "$0")/.."
root="$PWD"
smoke=false
for arg in "$@"; do
    case "$arg" in
        --smoke) smoke=true ;;
        -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

log() { printf '\n==> %s\n' "$*"; }

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ "$commit" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then
    commit="$commit-modified"
fi
export UDPCHAT_COMMIT="$commit"
out="${OUT:-$root/dist/out}"
mkdir -p "$out"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# Small, stripped binaries for download (the repository's release profile
# keeps line tables for profiling).
export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols

# Packages: installed when missing, as root with apt-get.
need=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
command -v zip >/dev/null 2>&1 || need+=(zip)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update </dev/null && apt-get install -y --no-install-recommends "${need[@]}" </dev/null
fi

rust_lld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/rust-lld"

# build TARGET: the two binaries, release, for TARGET.
build() {
    local target="$1"
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
    log "cargo build --release --target $target (commit $commit)"
    cargo build --release --locked --target "$target" --bin udpchat --bin udpchat-relay --bin udpchat-conform
}

# Reproducible tarball of directory $2 (under $stage) as $1.
tarball() {
    local archive="$1" dir="$2" mtime
    mtime="@$(git log -1 --format=%ct 2>/dev/null || date +%s)"
    tar -C "$stage" --sort=name --mtime="$mtime" --owner=0 --group=0 --numeric-owner \
        -czf "$out/$archive" "$dir"
}

# Linux: static musl builds.
linux() {
    local target="$1" arch="$2" dir="udpchat-$version-linux-$2"
    build "$target"
    mkdir -p "$stage/$dir"
    install -m 0755 "target/$target/release/udpchat" "target/$target/release/udpchat-relay" \
        "target/$target/release/udpchat-conform" "$stage/$dir/"
    install -m 0644 dist/STUDENTS.txt "$stage/$dir/"
    file "$stage/$dir/udpchat" | sed "s|$stage/||"
    tarball "$dir.tar.gz" "$dir"
    echo "$arch: $out/$dir.tar.gz"
}

linux x86_64-unknown-linux-musl x86_64

# aarch64: gcc-aarch64-linux-gnu if present (Debian), else rust-lld with
# the target's own self-contained musl start files.
if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
else
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER="$rust_lld"
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C linker-flavor=ld.lld"
fi
linux aarch64-unknown-linux-musl aarch64

# Windows: mingw, zipped with Windows line ends on the text.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
build x86_64-pc-windows-gnu
windir="udpchat-$version-windows-x86_64"
mkdir -p "$stage/$windir"
cp target/x86_64-pc-windows-gnu/release/udpchat.exe target/x86_64-pc-windows-gnu/release/udpchat-relay.exe \
    target/x86_64-pc-windows-gnu/release/udpchat-conform.exe "$stage/$windir/"
sed 's/$/\r/' dist/STUDENTS.txt >"$stage/$windir/STUDENTS.txt"
touch -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)" "$stage/$windir"/*
rm -f "$out/$windir.zip"
(cd "$stage" && zip -X -q -r "$out/$windir.zip" "$windir")
echo "windows: $out/$windir.zip"

log "SHA256SUMS"
(cd "$out" && sha256sum ./*.tar.gz ./*.zip | sed 's| \./| |' >SHA256SUMS && cat SHA256SUMS)
ls -l "$out"

if ! $smoke; then
    exit 0
fi

# ---- --smoke: the Linux x86_64 archive on a clean root -------------------
log "smoke: the Linux x86_64 archive in a chroot with nothing else in it"
if [ "$(id -u)" -ne 0 ]; then
    echo "--smoke needs root (chroot, unshare); not run" >&2
    exit 1
fi
jail="$stage/jail"
mkdir -p "$jail"
tar -C "$jail" --strip-components=1 -xzf "$out/udpchat-$version-linux-x86_64.tar.gz"
mkdir -p "$jail/tmp" "$jail/state"
echo "the clean root holds only:"; (cd "$jail" && find . | sort)
# Its own network namespace: a loopback of its own, no other network.
unshare --net --fork bash -euo pipefail -c '
    jail="$1"; version_line="$2"
    ip link set lo up
    in_jail() { chroot "$jail" "$@"; }
    for bin in udpchat udpchat-relay; do
        said="$(in_jail "/$bin" --version)"
        echo "$said"
        [ "$said" = "$bin $version_line" ]
    done
    # chroot itself (not the function, whose subshell would be the pid)
    # so that the relay is the process stopped below.
    chroot "$jail" /udpchat-relay --bind 127.0.0.1:10024 --no-console >"$jail/tmp/relay.out" 2>&1 &
    relay=$!
    trap '"'"'kill -KILL "$relay" 2>/dev/null || true'"'"' EXIT
    sleep 1
    (sleep 4) | in_jail /udpchat --relay 127.0.0.1:10024 --nick reader --state-dir /state \
        >"$jail/tmp/reader.out" 2>&1 &
    reader=$!
    sleep 1.5
    printf "hello from a clean root\n" \
        | in_jail /udpchat --relay 127.0.0.1:10024 --nick writer --state-dir /state
    wait "$reader" || true
    kill -TERM "$relay"; wait "$relay" || true
    echo "--- the reader saw:"; cat "$jail/tmp/reader.out"
    echo "--- the relay said:"; cat "$jail/tmp/relay.out"
    grep -q "writer: hello from a clean root" "$jail/tmp/reader.out"
' smoke "$jail" "$version (commit $commit)"
echo "smoke: the static Linux build ran in an empty chroot: --version, relay, and a chat between two piped clients"

# The aarch64 build: --version and the same chat under qemu-aarch64 (Debian's
# qemu-user), if it is here, in a network namespace of its own.
qemu="$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)"
if [ -n "$qemu" ]; then
    log "smoke: the Linux aarch64 archive under $qemu"
    pi="$stage/pi"
    mkdir -p "$pi/state"
    tar -C "$pi" --strip-components=1 -xzf "$out/udpchat-$version-linux-aarch64.tar.gz"
    file "$pi/udpchat-relay" | sed "s|$pi/||"
    unshare --net --fork bash -euo pipefail -c '
        pi="$1"; qemu="$2"; version_line="$3"
        ip link set lo up
        said="$("$qemu" "$pi/udpchat" --version)"
        echo "$said"
        [ "$said" = "udpchat $version_line" ]
        "$qemu" "$pi/udpchat-relay" --bind 127.0.0.1:10024 --no-console >"$pi/relay.out" 2>&1 &
        relay=$!
        trap '"'"'kill -KILL "$relay" 2>/dev/null || true'"'"' EXIT
        sleep 2
        (sleep 6) | "$qemu" "$pi/udpchat" --relay 127.0.0.1:10024 --nick reader \
            --state-dir "$pi/state" >"$pi/reader.out" 2>&1 &
        reader=$!
        sleep 3
        printf "hello from a raspberry pi\n" \
            | "$qemu" "$pi/udpchat" --relay 127.0.0.1:10024 --nick writer --state-dir "$pi/state"
        wait "$reader" || true
        kill -TERM "$relay"; wait "$relay" || true
        echo "--- the reader saw:"; cat "$pi/reader.out"
        grep -q "writer: hello from a raspberry pi" "$pi/reader.out"
    ' smoke "$pi" "$qemu" "$version (commit $commit)"
    echo "smoke: the aarch64 build ran under qemu: --version, relay, and a chat"
else
    echo "smoke: no qemu-aarch64 here (Debian: qemu-user); the aarch64 build not run"
fi

# The Windows exe: --version under wine, if wine is here (with the stand-in
# bcryptprimitives.dll that Debian's wine 8 lacks, never shipped).
wine="$(command -v wine64 || command -v wine || { [ -x /usr/lib/wine/wine64 ] && echo /usr/lib/wine/wine64; } || true)"
if [ -n "$wine" ]; then
    log "smoke: udpchat.exe --version under wine"
    windows_try="$stage/windows"
    mkdir -p "$windows_try"
    (cd "$windows_try" && unzip -q "$out/$windir.zip")
    x86_64-w64-mingw32-gcc -shared -O2 -o "$windows_try/$windir/bcryptprimitives.dll" \
        dist/windows/bcryptprimitives.c -ladvapi32
    WINEPREFIX="$root/target/wine-prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" \
        DISPLAY= "$wine" "$windows_try/$windir/udpchat.exe" --version </dev/null
else
    echo "smoke: no wine here; udpchat.exe not run"
fi
