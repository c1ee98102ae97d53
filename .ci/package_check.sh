#!/usr/bin/env bash
# Packaging check (issue 24): what a user gets from `pip install`.
#
# 1. `python -m build` makes an sdist and, from it, a wheel (build runs in a throwaway venv),
#    as `python -m build` does by default; the wheel must contain the compiled core (this
#    machine has a C compiler).
# 2. The wheel goes into a fresh venv with the runtime extras `aiohttp` and `asgi` (the README
#    shows both); there, away from the source tree, the README's Python blocks run,
#    `python -m electron` must report the compiled core, and .ci/package_smoke.py serves an
#    aiohttp app on a real socket (pooled routes, bodies checked byte for byte, nothing left
#    lent).
# 3. The sdist is installed once more into a fresh venv with no usable C compiler (CC=false),
#    in the background while the wheel is built and tested: it must install, the build must
#    print electron's warning (pip shows build output only with -v, so the install runs with
#    -v and the log is searched), the installed package must hold no compiled module,
#    `python -m electron` must report the pure-Python core, and the README's quick start must
#    run on it.
#
# Exits non-zero at the first failure; prints each check as it passes. PYTHON selects the
# interpreter (default python3); KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/electron-package-check.XXXXXX")
pure_pid=
cleanup() {
  # The background install (its own process group) stops with the script.
  if [ -n "$pure_pid" ] && kill -0 "$pure_pid" 2>/dev/null; then
    kill -- -"$pure_pid" 2>/dev/null || true
    wait "$pure_pid" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory (kept): $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
start=$SECONDS
unset PYTHONPATH ELECTRON_PURE_PYTHON

step() { printf '\n== [%3ds] %s\n' $((SECONDS - start)) "$*"; }
ok() { echo "ok: $*"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
pip_install() { # venv python, log name, pip arguments...: quiet unless it fails
  local py=$1 log="$work/$2.log"
  shift 2
  "$py" -m pip install --no-cache-dir "$@" >"$log" 2>&1 || { tail -40 "$log"; fail "pip install $* (log above)"; }
}
# Runs the README's ```python blocks with the given interpreter, from the work directory
# (never the clone, whose electron/ would shadow the installed one). $2: how many blocks
# (0: all).
run_readme() {
  (cd "$work" && "$1" - "$root/README.md" "$2" <<'EOF'
import re, sys
blocks = re.findall(r"```python\n(.*?)```", open(sys.argv[1]).read(), re.S)
count = int(sys.argv[2]) or len(blocks)
for i, code in enumerate(blocks[:count]):
    exec(compile(code, f"README.md block {i}", "exec"), {"__name__": "readme_example"})
print(f"{count} README block(s) ran")
EOF
  )
}

step "build an sdist with python -m build"
"$python" -m venv "$work/build-env"
pip_install "$work/build-env/bin/python" pip-build build
"$work/build-env/bin/python" -m build --sdist --outdir "$work/dist" "$root" >"$work/sdist.log" 2>&1 \
  || { tail -40 "$work/sdist.log"; fail "python -m build --sdist (log above)"; }
sdist=$(ls "$work"/dist/electron-*.tar.gz)
ok "sdist $(basename "$sdist")"

# The no-compiler install needs only the sdist: it runs in the background meanwhile (the
# machine's other core), and is checked in the last step.
"$python" -m venv "$work/pure"
pure="$work/pure/bin/python"
CC=false setsid "$pure" -m pip install -v --no-cache-dir "$sdist" >"$work/pure.log" 2>&1 &
pure_pid=$!

step "build a wheel from the sdist with python -m build"
mkdir "$work/src"
tar -xzf "$sdist" -C "$work/src"
"$work/build-env/bin/python" -m build --wheel --outdir "$work/dist" "$work"/src/electron-* \
  >"$work/wheel.log" 2>&1 || { tail -40 "$work/wheel.log"; fail "python -m build --wheel (log above)"; }
wheel=$(ls "$work"/dist/electron-*.whl)
ok "wheel $(basename "$wheel")"
"$python" - "$wheel" "$sdist" <<'EOF' || fail "archive contents"
import sys, tarfile, zipfile
wheel = zipfile.ZipFile(sys.argv[1]).namelist()
compiled = [n for n in wheel if n.endswith((".so", ".pyd"))]
for need in ("electron/__init__.py", "electron/__main__.py", "electron/py.typed",
             "electron/aio/aiohttp/__init__.py", "electron/testing/pytest_plugin.py"):
    assert need in wheel, f"the wheel lacks {need}"
assert not [n for n in wheel if n.startswith(("tests/", "bench/", "examples/"))], wheel
core = [n for n in compiled if n.startswith("electron/_")]
assert len(core) >= 9, f"the wheel holds {len(core)} compiled core modules, expected 9: {compiled}"
names = tarfile.open(sys.argv[2]).getnames()
for need in ("setup.py", "pyproject.toml", "README.md", "electron/_arena.py"):
    assert any(n.endswith("/" + need) for n in names), f"the sdist lacks {need}"
print(f"ok: the wheel holds {len(wheel)} files, {len(compiled)} compiled ({', '.join(sorted(core))})")
EOF

step "install the wheel with the aiohttp and asgi extras into a fresh venv"
"$python" -m venv "$work/user"
user="$work/user/bin/python"
pip_install "$user" pip-user "$wheel[aiohttp,asgi]"
ok "installed: $("$user" -m pip list --format=freeze 2>/dev/null | tr '\n' ' ')"
where=$(cd "$work" && "$user" -c "import electron; print(electron.__file__)")
case "$where" in
  "$work/user/"*) ok "electron imports from the venv ($where)" ;;
  *) fail "electron imports from $where, not from the venv" ;;
esac
report=$(cd "$work" && "$user" -m electron)
echo "$report" | sed 's/^/    /'
grep -q '^core: *compiled (mypyc)' <<<"$report" || fail "python -m electron does not report the compiled core"
ok "python -m electron reports the compiled core"
run_readme "$user" 0 || fail "the README's examples on the installed wheel"
ok "the README's Python blocks run on the installed wheel"
(cd "$work" && "$user" "$root/.ci/package_smoke.py") || fail "the aiohttp smoke test"

step "the sdist installed with no C compiler (CC=false) into a fresh venv"
status=0
wait "$pure_pid" || status=$?
pure_pid=
[ "$status" = 0 ] || { tail -40 "$work/pure.log"; fail "pip install without a compiler (log above)"; }
ok "it installs without a compiler"
warning=$(grep -m1 'WARNING: electron: compiling the core failed' "$work/pure.log") \
  || fail "no build-time warning in pip's output (pip install -v)"
ok "the build warned: ${warning:0:160}"
compiled=$(cd "$work" && "$pure" -c "import electron, pathlib
print(len([p for p in pathlib.Path(electron.__file__).parent.iterdir() if p.suffix in ('.so', '.pyd')]))")
[ "$compiled" = 0 ] || fail "$compiled compiled modules installed without a compiler"
ok "no compiled module installed"
report=$(cd "$work" && "$pure" -m electron)
echo "$report" | sed 's/^/    /'
grep -q '^core: *pure Python: no compiled modules found' <<<"$report" \
  || fail "python -m electron does not report the pure-Python core"
ok "python -m electron reports the pure-Python core and why"
run_readme "$pure" 1 || fail "the README quick start on the pure-Python core"
ok "the README quick start runs on the pure-Python core"

step "package check passed in $((SECONDS - start)) s"
