#!/usr/bin/env bash
# Ripple's main job on a fresh machine: install, start local mode with the example order flow, send orders and
# show them flow through (validate → reply → ship, and a failing order → retries → dead-letter sink).
# Interactive (a terminal): keeps running until Ctrl-C so you can send more events. Otherwise stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

. hack/lib.sh
install_ripple

port="${RIPPLE_PORT:-8080}"
data_dir="$(mktemp -d)"
log="$data_dir/dev.log"
: > "$log"
broker="http://127.0.0.1:${port}/shop/default"

python3 -m ripple dev functions/order-flow --port "$port" --data-dir "$data_dir" > >(tee "$log") 2>&1 &
dev=$!
trap 'kill -INT "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true' EXIT

wait_for "broker ready: $broker"
echo "--- sending order 1 (valid): placed → validated (reply) → shipped"
python3 -m ripple send --to "$broker" --type order.placed --source /shop --id "order-1" \
  --data '{"orderId": 1, "customer": "ada", "items": [{"price": 12.5, "quantity": 2}]}'
wait_for "shipping order 1"
echo "--- sending order 2 (no address): shipping fails, is retried, then dead-lettered to the sink"
python3 -m ripple send --to "$broker" --type order.placed --source /shop --id "order-2" \
  --data '{"orderId": 2, "customer": "nobody", "items": [{"price": 5, "quantity": 1}]}'
wait_for "dead letter: order.validated"

if [ -t 0 ] && [ -t 1 ]; then
  echo "--- Ripple is running. Send your own events, e.g.:"
  echo "    ripple send --to $broker --type order.placed --source /me --data '{\"orderId\": 3, \"customer\": \"me\", \"items\": [{\"price\": 1}]}'"
  echo "--- Ctrl-C to stop."
  wait "$dev"
else
  echo "--- demo complete"
fi
