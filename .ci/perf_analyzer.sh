#!/usr/bin/env bash
# Makes Triton's perf_analyzer runnable here and prints the path of a wrapper for MLC_PERF_ANALYZER.
# PyPI's perf-analyzer wheels are manylinux_2_38 (glibc 2.38, GLIBCXX_3.4.32); Debian 12 has glibc
# 2.36. Debian 13's libc6, libstdc++6 and libgcc-s1 are unpacked (not installed) into a private
# folder and the binary runs through that folder's dynamic loader. Only package registries are used.
set -euo pipefail
dir=${1:-$PWD/.ci-cache/perf_analyzer}
if [ -x "$dir/perf_analyzer" ]; then echo "$dir/perf_analyzer"; exit 0; fi
mkdir -p "$dir"/apt/lists/partial "$dir"/apt/cache/archives/partial "$dir"/debs "$dir"/root "$dir"/wheel
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
  > "$dir/apt/sources.list"
o=(-o "Dir::Etc::SourceList=$dir/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
   -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache" -o APT::Architecture=amd64)
apt-get "${o[@]}" update -qq >&2
(cd "$dir/debs" && apt-get "${o[@]}" download -qq libc6 libstdc++6 libgcc-s1 >&2)
for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$dir/root"; done
python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_38_x86_64 \
  -d "$dir/wheel" "perf-analyzer>=2.50" >&2
(cd "$dir/wheel" && python3 -m zipfile -e perf_analyzer-*.whl x)
bin=$(find "$dir/wheel/x" -path '*bin/perf_analyzer' -type f | head -n 1)
chmod +x "$bin"
lib="$dir/root/usr/lib/x86_64-linux-gnu"
cat > "$dir/perf_analyzer" <<EOF
#!/bin/sh
exec "$lib/ld-linux-x86-64.so.2" --library-path "$lib:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" "$bin" "\$@"
EOF
chmod +x "$dir/perf_analyzer"
echo "$dir/perf_analyzer"
