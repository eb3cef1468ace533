#!/usr/bin/env bash
# Installs diffprior (core + every plugin in plugins/ and contrib/, editable) and the dev
# tools into a virtual environment. Usage: bash scripts/install.sh [VENV_DIR]   (default .venv)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$root/.venv}"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# torch comes from the package registry (its torchvision matches it, which timm needs)
args=(-e "$root[dev]")
for dir in "$root"/plugins/*/ "$root"/contrib/*/; do
  [ -f "$dir/pyproject.toml" ] && args+=(-e "$dir")
done
"$venv/bin/python" -m pip install -q "${args[@]}"
"$venv/bin/python" -c "import timm, torch, diffprior; print('installed: torch', torch.__version__, '| timm', timm.__version__)"
