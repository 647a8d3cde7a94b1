#!/usr/bin/env bash
# The wheels `benchmarks/gpu_campaign.py` needs on the device machine that its image lacks (Python 3.12 there:
# ase, the offline teacher sevenn==0.13.0 and its matscipy and braceexpand), into .whl/ (git-ignored; name it in
# the device run's `carry`). sevenn's wheel is cut to the SevenNet-0 (11Jul2024) checkpoint the registry pins, so
# that the working tree stays under the device's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
ase_version=$(python -c "import ase; print(ase.__version__)")
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "ase==${ase_version}" sevenn==0.13.0 matscipy==1.3.1 braceexpand==0.1.7
zip -q -d .whl/sevenn-0.13.0-py3-none-any.whl 'sevenn/pretrained_potentials/SevenNet_l3i5/*' \
  'sevenn/pretrained_potentials/SevenNet_MF_0/*' 'sevenn/pretrained_potentials/SevenNet_0__22May2024/*' \
  'sevenn/pair_e3gnn/*' 'sevenn/pair_d3*.so'
du -sh .whl && ls .whl
