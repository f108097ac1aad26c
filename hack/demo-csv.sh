#!/usr/bin/env bash
# The CSV pipeline of functions/csv-etl, end to end on this machine: a PostgreSQL (Debian's, initdb into a
# temporary directory), an S3 server (moto), and `ripple dev`; then a sample CSV with two bad rows is uploaded,
# and the rows stored in PostgreSQL and the notification are shown. Needs: PostgreSQL installed (hack/test.sh
# installs it), and the ports 9090 (S3), 55432 (PostgreSQL) and 8080 free.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "Running pip as the 'root' user" || true

work=$(mktemp -d)
pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort | tail -n 1)")
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
cleanup() {
  cp "$work/dev.log" "${TMPDIR:-/tmp}/ripple-demo-csv.log" 2>/dev/null || true
  [ -n "${dev_pid:-}" ] && kill "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
  [ -n "${s3_pid:-}" ] && kill "$s3_pid" 2>/dev/null || true
  as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "--- starting PostgreSQL on 127.0.0.1:55432 and an S3 server on 127.0.0.1:9090"
as_pg "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -o "-p 55432 -k $work -c listen_addresses=127.0.0.1" -l "$work/pg.log" -w start \
  >/dev/null || { cat "$work/pg.log"; exit 1; }
moto_server -H 127.0.0.1 -p 9090 >"$work/s3.log" 2>&1 &
s3_pid=$!
export AWS_ACCESS_KEY_ID=demo-access AWS_SECRET_ACCESS_KEY=demo-secret AWS_DEFAULT_REGION=us-east-1
s3() { python3 - "$@" <<'PY'
import sys, time, botocore.session
client = botocore.session.get_session().create_client("s3", endpoint_url="http://127.0.0.1:9090")
for attempt in range(100):
    try:
        client.list_buckets(); break
    except Exception:
        time.sleep(0.1)
if sys.argv[1] == "mb":
    client.create_bucket(Bucket=sys.argv[2])
else:
    client.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=open(sys.argv[4], "rb").read())
PY
}
s3 mb uploads

echo "--- ripple dev functions/csv-etl"
python3 -m ripple dev functions/csv-etl --data-dir "$work/ripple" >"$work/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 100); do grep -q "source ready: etl/uploads" "$work/dev.log" && break; sleep 0.2; done
grep "ready" "$work/dev.log"

echo "--- uploading functions/csv-etl/sample.csv to s3://uploads/incoming/scores.csv"
s3 put uploads incoming/scores.csv functions/csv-etl/sample.csv
for _ in $(seq 150); do grep -q "notification:" "$work/dev.log" && break; sleep 0.2; done
grep -E "rows stored|notification|line [0-9]+:" "$work/dev.log" || { cat "$work/dev.log"; exit 1; }

echo "--- the rows in PostgreSQL"
as_pg "$pg_bin/../bin/psql" -h 127.0.0.1 -p 55432 -U postgres -c "SELECT id, name, email, score FROM scores ORDER BY id"
echo "--- demo complete"
