# Helpers the demo scripts source from the repository's root.

install_ripple() {  # the package, as a fresh machine needs it
  python3 -m pip install --quiet --disable-pip-version-check -e . 2>&1 | grep -v "Running pip as the 'root' user" || true
}

# wait_for needs $log (the dev log) and $dev (its pid) set first.

wait_for() {  # wait_for TEXT: until the dev log has a line with TEXT
  for _ in $(seq 600); do
    grep -qF -- "$1" "$log" && return 0
    kill -0 "$dev" 2>/dev/null || { echo "ripple dev exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "timed out waiting for: $1" >&2
  exit 1
}
