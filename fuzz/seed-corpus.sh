#!/bin/sh
# Seeds the config fuzz corpus: the shipped example config (every key), and
# each of its sections alone. Corpora are not committed (see .gitignore).
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/config
cp ../packaging/hapwatch.toml corpus/config/example
awk '/^\[/ { n++ } { print > ("corpus/config/section-" n) }' ../packaging/hapwatch.toml
echo "corpus/config: $(ls corpus/config | wc -l) inputs"
