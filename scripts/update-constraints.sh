#!/usr/bin/env bash
# Re-resolve the project's dependencies in a fresh virtual environment, the way a newcomer installs, and write the
# versions pip chose to constraints.txt (what CI installs). Run the test suite afterwards before committing the file.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e ".[cpu,test]"
{
  echo "# Tested versions: CI installs with \`pip install -c constraints.txt -e \".[cpu,test]\"\` in a fresh virtual environment."
  echo "# Users get the loose lower bounds of pyproject.toml. Regenerate with scripts/update-constraints.sh (fresh venv, resolve, freeze)."
  echo "# Resolved on $(date -u +%F), Python $("$venv/bin/python" -V | cut -d' ' -f2), $(uname -s | tr A-Z a-z) $(uname -m)."
  "$venv/bin/python" -m pip freeze --exclude-editable | grep -v '^prunebench'
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
