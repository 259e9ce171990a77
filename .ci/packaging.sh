#!/usr/bin/env bash
# The Debian package, exercised: built with cargo-deb from the release binary, its contents
# listed and checked, installed, its systemd unit verified and its exposure score kept at
# 1.2 ("OK") or better.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! cargo deb --version >/dev/null 2>&1; then
  echo "== installing cargo-deb"
  cargo install --locked --quiet cargo-deb@3.6.2
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "== installing systemd for systemd-analyze"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq systemd >/dev/null
fi

cargo build --release --locked
deb=$(cargo deb --no-build --output target/debian/ 2>/dev/null | tail -1)
[ -f "$deb" ] || deb=$(ls -t target/debian/*.deb | head -1)
echo "== $deb"
dpkg-deb --info "$deb" | sed -n '1,20p'
contents=$(dpkg-deb --contents "$deb")
echo "$contents"
for f in ./usr/bin/scimd ./usr/lib/systemd/system/scimd.service ./etc/default/scimd ./usr/share/doc/scimd/README.md; do
  grep -q " $f\$" <<<"$contents" || { echo "the package lacks $f"; exit 1; }
done

$SUDO dpkg -i "$deb" >/dev/null
/usr/bin/scimd --version
unit=/usr/lib/systemd/system/scimd.service
echo "== systemd-analyze verify $unit"
out=$(systemd-analyze verify "$unit" 2>&1 || true)
echo "$out"
if grep -v -e "sysinit.target" -e "^$" <<<"$out" | grep -q .; then
  echo "the unit does not verify"
  exit 1
fi
echo "== systemd-analyze security $unit"
report=$(systemd-analyze security --offline=yes "$unit" 2>&1 || true)
echo "$report"
score=$(sed -n 's/.*Overall exposure level for scimd.service: \([0-9.]*\).*/\1/p' <<<"$report")
echo "exposure: $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 1.2) }' || { echo "exposure $score is above 1.2"; exit 1; }
$SUDO dpkg -r scimd >/dev/null
