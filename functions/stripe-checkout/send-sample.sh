#!/usr/bin/env bash
# Sends sample-event.json to the Stripe EventSource of `ripple dev functions/stripe-checkout`, signed as Stripe
# signs it: Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed by the signing secret>.
#   ./send-sample.sh [URL] [SECRET]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
url=${1:-http://127.0.0.1:8080/sources/shop/stripe/checkout}
secret=${2:-whsec_local_example_only}
t=$(date +%s)
sig=$( { printf '%s.' "$t"; cat "$here/sample-event.json"; } | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
curl -sS -i -X POST "$url" -H 'Content-Type: application/json' -H "Stripe-Signature: t=$t,v1=$sig" \
  --data-binary @"$here/sample-event.json"
