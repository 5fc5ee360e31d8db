#!/usr/bin/env bash
# The README's demo: a lab of three simulated uplinks, what is in it, a DHCP lease from
# each ISP, then everything removed again.
set -euo pipefail
cd "$(dirname "$0")/.."
ctl() { node bin/netsessionctl.js "$@"; }
NAME=${DEMO_LAB:-demo}
trap 'echo; echo "== lab down"; ctl lab down --name "$NAME"' EXIT

echo "== lab up (3 uplinks)"
ctl lab up --name "$NAME" --uplinks 3
echo
echo "== lab status"
ctl lab status --name "$NAME"
echo
echo "== a DHCP lease from each ISP (busybox udhcpc in the device namespace)"
for i in 0 1 2; do
  ctl lab exec --name "$NAME" -- busybox udhcpc -q -f -n -t 3 -i "eth$i" -s /bin/true 2>&1 | grep -i 'lease of' || true
done
