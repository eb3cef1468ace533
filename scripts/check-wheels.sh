#!/usr/bin/env bash
# Installs diffprior as a user who gets the wheels would: builds the wheel of every distribution
# (core, plugins/*, contrib/*), installs them into a fresh venv (dependencies from the package
# registry), then, from a temporary folder holding a copy of examples/, validates every example
# and runs the quick ones for a few steps. Usage: bash scripts/check-wheels.sh [WORK_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work/wheels"
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q --upgrade pip
dists=("$root")
for dir in "$root"/plugins/*/ "$root"/contrib/*/; do
  [ -f "$dir/pyproject.toml" ] && dists+=("$dir")
done
# a packaging or deprecation warning from any build fails the check
"$py" -m pip wheel -q --no-deps -w "$work/wheels" "${dists[@]}" 2> "$work/build.log" || { cat "$work/build.log"; exit 1; }
if grep -iE "BuildBackendWarning|SetuptoolsDeprecationWarning|is deprecated" "$work/build.log"; then
  echo "check-wheels: the builds above gave packaging warnings" >&2; exit 1
fi
"$py" -m pip install -q "$work"/wheels/*.whl
cp -r "$root/examples" "$work/examples"
cd "$work"
cli="$work/venv/bin/diffprior"
# examples that need files a user brings (256x256 face models) are validated only where present
needs_user_files=(faces-attributes.toml)
for config in examples/*.toml; do
  name="$(basename "$config")"
  if [[ " ${needs_user_files[*]} " == *" $name "* ]]; then echo "skipped (needs the user's model files): $name"; continue; fi
  "$cli" validate "$config"
done
for config in digits gaussian digits-mask tsp landcover; do
  "$cli" run "examples/$config.toml" --quiet --set optimizer.steps=3 --batch 2 --out "runs/$config"
  test -f "runs/$config/manifest.json" || { echo "check-wheels: runs/$config has no manifest.json" >&2; exit 1; }
done
echo "check-wheels: $(ls "$work"/wheels | wc -l) wheels installed; examples validated and run from $work"
