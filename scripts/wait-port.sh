# Sourced by the scripts that start mistral-proxy or a bench tool on port 0
# (scripts/pgo-train, bench/instructions, bench/ab):
#   wait_port LOG [TRIES]
# prints the port of the first "listening on 127.0.0.1:PORT" line of LOG,
# looking again every 0.1 s until it appears (TRIES times, default 600: a
# minute, what valgrind's start-up can take), or fails naming the script
# ($0) and LOG's last lines.
wait_port() {
  local log=$1 tries=${2:-600} port=""
  for _ in $(seq 1 "$tries"); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" 2>/dev/null | head -1 | grep -o '[0-9]*$' || true)
    [[ -n $port ]] && { echo "$port"; return 0; }
    sleep 0.1
  done
  echo "$(basename "$0"): no 'listening on' in $log: $(tail -3 "$log")" >&2
  return 1
}
