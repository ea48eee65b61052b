#!/usr/bin/env bash
# Create ./.venv and install Covernet into it (again only when pyproject.toml changed).
# With --browser, also make sure Debian's Chromium (and CJK fonts) are installed for
# the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON=$candidate
      break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "Covernet needs Python 3.11 or newer" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "› creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.covernet-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "› installing Covernet and its dependencies into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  rm -f .venv/.covernet-*
  touch "$stamp"
fi

if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || $SUDO true 2>/dev/null; }; then
    echo "› installing Debian's chromium for the browser tests"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  else
    echo "! /usr/bin/chromium is missing and cannot be installed here: browser tests will skip" >&2
  fi
fi

# E-policy PDFs embed a Chinese font (policies/epolicy.py): Debian's WenQuanYi Micro Hei
# unless COVERNET_PDF_FONT names another; without any, the PDF route answers 503.
WQY=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
if [ -z "${COVERNET_PDF_FONT:-}" ] && [ ! -f "$WQY" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || $SUDO true 2>/dev/null; }; then
    echo "› installing Debian's fonts-wqy-microhei for the e-policy PDFs"
    { $SUDO apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fonts-wqy-microhei >/dev/null; } ||
      echo "! could not install fonts-wqy-microhei: e-policy PDFs use Noto CJK if present" >&2
  else
    echo "! $WQY is missing and apt-get is not usable here: set COVERNET_PDF_FONT for PDFs" >&2
  fi
fi
