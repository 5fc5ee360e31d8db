#!/usr/bin/env bash
# The README's demo: a lab of three uplinks (all dual-stack; isp1 behind a captive
# portal), netsessiond managing them all at once, the per-service routing tables, and the
# default service moving when its uplink goes down. Everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ctl() { node bin/netsessionctl.js "$@"; }
NAME=${DEMO_LAB:-demo}
NS=nsl-$NAME-dev
trap 'echo; echo "== lab down"; ctl lab down --name "$NAME"' EXIT

echo "== lab up: 3 uplinks, isp1 behind a captive portal"
ctl lab up --name "$NAME" --uplinks 3 >/dev/null
ctl lab isp --name "$NAME" isp1 portal
ctl lab daemon --name "$NAME" start >/dev/null
BUS=$(node -e "console.log(JSON.parse(require('fs').readFileSync('/tmp/netsession-lab/$NAME/lab.json', 'utf8')).bus.address)")
export DBUS_SYSTEM_BUS_ADDRESS=$BUS
echo "netsessiond runs in $NS, on the lab bus $BUS"

# wait until the three services have settled: two online, one ready behind the portal
for _ in $(seq 1 100); do
  n=$(ctl services --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.filter(x=>x.properties.State==="online").length+"/"+j.filter(x=>x.properties.State==="ready").length)})')
  [ "$n" = "2/1" ] && break
  sleep 0.1
done
echo
echo "== services (* favorite, A autoconnect, O online, R ready)"
ctl services
echo
echo "== the service behind the portal"
ctl services eth1 | grep -E 'State|Interface|CaptivePortal|IPv4 ='
echo
echo "== per-service routing tables and the rules that lead into them"
ip -n "$NS" rule show | grep -v -E 'lookup (local|main|default)$'
for t in $(ip -n "$NS" -j rule show | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{console.log([...new Set(JSON.parse(s).filter(r=>r.protocol==="83").map(r=>r.table))].join(" "))})'); do
  echo "-- table $t"; ip -n "$NS" route show table "$t"; ip -n "$NS" -6 route show table "$t"
done
echo "-- main (the default service's default routes)"
ip -n "$NS" route show default; ip -n "$NS" -6 route show default

echo
DEF=$(ip -n "$NS" -j route show default | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].dev))')
ISP=isp${DEF#eth}
echo "== the default service is on $DEF: taking $ISP's link down"
# the ISP side of the cable goes down (what `netsessionctl lab link` does), timed with plain ip
t0=$(date +%s%N)
ip -n "nsl-$NAME-$ISP" link set "gw${DEF#eth}" down
while ip -n "$NS" route show default | grep -q "dev $DEF "; do :; done
t1=$(date +%s%N)
echo "default moved to $(ip -n "$NS" route show default | awk '{print $5}') after $(( (t1 - t0) / 1000000 )) ms"
echo
ctl services
