#!/usr/bin/env bash
# The order-fulfilment Sequence (functions/order-fulfilment) in local mode: validate payment → update inventory →
# send the confirmation, each hand-off stored in JetStream. Sends three orders (one completes, one has a declined
# card and is cancelled by the payment step's onError, one wants more than the stock and is refunded by the
# inventory step's onError), then shows where each went with `ripple events trace` and `ripple status`.
# Interactive (a terminal): keeps running until Ctrl-C. Otherwise stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

. hack/lib.sh
install_ripple

port="${RIPPLE_PORT:-8080}"
data_dir="$(mktemp -d)"
log="$data_dir/dev.log"
: > "$log"
broker="http://127.0.0.1:${port}/shop/default"
example="$data_dir/order-fulfilment"
cp -r functions/order-fulfilment "$example"
sed -i "s|{name: STOCK_DB, value: \"\"}|{name: STOCK_DB, value: \"$data_dir/stock.sqlite\"}|" "$example/order-fulfilment.yaml"

python3 -m ripple dev "$example" --port "$port" --data-dir "$data_dir" > >(tee "$log") 2>&1 &
dev=$!
trap 'kill -INT "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true' EXIT


send_order() {  # send_order N CARD SKU QUANTITY
  python3 -m ripple send --to "$broker" --type order.placed --source /shop --id "order-$1" \
    --data "{\"orderId\": $1, \"customer\": \"customer-$1\", \"card\": \"$2\", \"items\": [{\"sku\": \"$3\", \"quantity\": $4, \"price\": 12.5}]}"
}

wait_for "sequence ready: http://127.0.0.1:${port}/shop/sequences/fulfil-order"
echo "--- order 1: payment → inventory → confirmation → order.confirmed"
send_order 1 4242 book 2
wait_for "order 1: order.confirmed"
echo "--- order 2: the card is declined; the payment step's onError cancels the order"
send_order 2 declined book 1
wait_for "order 2: order.cancelled"
echo "--- order 3: 5 lamps, 2 in stock; the inventory step's onError refunds the payment"
send_order 3 4242 lamp 5
wait_for "order 3: order.cancelled"
echo "--- where did order 3 go?"
python3 -m ripple events trace order-3 --data-dir "$data_dir"
echo "--- the Sequence's steps"
python3 -m ripple status --data-dir "$data_dir"

if [ -t 0 ] && [ -t 1 ]; then
  echo "--- Ripple is running; Ctrl-C to stop."
  wait "$dev"
else
  echo "--- demo complete"
fi
