"""Parses an uploaded CSV, validates each row and upserts the valid ones into PostgreSQL, once per event.

Columns: ID (integer), Name (non-empty), Email (contains @), Score (integer). Valid rows are upserted into the
``scores`` table in one transaction together with the idempotency ledger row (``@idempotent`` with a PostgreSQL
ledger), so a redelivered event changes nothing and a failure leaves nothing half-written. The reply,
``csv.processed``, carries the counts and each rejected row's line number and reason. A file that is not CSV at
all (not UTF-8 text, or without the expected header) is rejected: retrying would not change it, so it goes to the
dead letters with the reason.
"""

import csv
import io
import os

import botocore.session

from ripple.functions import PostgresLedger, Reject, idempotent

COLUMNS = ("ID", "Name", "Email", "Score")
SCHEMA = """CREATE TABLE IF NOT EXISTS scores (
  id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL, score integer NOT NULL, source_file text NOT NULL
)"""


def read_object(bucket, key):
    s3 = botocore.session.get_session().create_client("s3", endpoint_url=os.environ["S3_ENDPOINT"],
                                                      region_name="us-east-1")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def validate(row):
    """The row's values, or the reason it is rejected."""
    try:
        row_id = int(row["ID"])
    except (TypeError, ValueError):
        return None, f"ID {row['ID']!r} is not an integer"
    name, email = (row["Name"] or "").strip(), (row["Email"] or "").strip()
    if not name:
        return None, "Name is empty"
    if "@" not in email:
        return None, f"Email {email!r} is not an address"
    try:
        score = int(row["Score"])
    except (TypeError, ValueError):
        return None, f"Score {row['Score']!r} is not an integer"
    return (row_id, name, email, score), None


@idempotent(ledger=PostgresLedger(lambda: os.environ["DATABASE_URL"]))
def handle(event, db):
    obj = event.data
    body = read_object(obj["bucket"], obj["key"])
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Reject(f"{obj['key']} is not a CSV file (not UTF-8 text)") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not set(COLUMNS) <= set(reader.fieldnames):
        raise Reject(f"{obj['key']} is not a CSV file with the columns {', '.join(COLUMNS)}")
    db.execute(SCHEMA)
    inserted, rejected = 0, []
    for line, row in enumerate(reader, start=2):
        values, reason = validate(row)
        if reason is not None:
            rejected.append({"line": line, "reason": reason})
            continue
        db.execute("INSERT INTO scores VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET name = "
                   "excluded.name, email = excluded.email, score = excluded.score, source_file = excluded.source_file",
                   (*values, obj["key"]))
        inserted += 1
    print(f"{obj['key']}: {inserted} rows stored, {len(rejected)} rejected", flush=True)
    report = {"file": obj["key"], "rows": inserted + len(rejected), "stored": inserted, "rejected": rejected}
    return {"type": "csv.processed", "source": "/etl/process-csv", "subject": obj["key"], "data": report}
