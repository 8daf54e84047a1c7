#!/usr/bin/env bash
# Make sure the RabbitMQ broker of AMQP_URI answers: start the installed server, install it
# with apt-get when run as root, or say exactly what to do. Used by `make run` and `make test`.
set -euo pipefail

uri="${AMQP_URI:-amqp://guest:guest@127.0.0.1:5672/}"
hostport="${uri#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%:*}"; port="${hostport##*:}"
[ "$host" = "$hostport" ] && port=5672
[ -n "$host" ] || host=127.0.0.1

reachable() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

wait_for_broker() {
  for _ in $(seq 1 90); do
    reachable && { echo "RabbitMQ answers on $host:$port"; return 0; }
    sleep 1
  done
  echo "RabbitMQ did not start listening on $host:$port within 90s; see /var/log/rabbitmq/" >&2
  return 1
}

reachable && exit 0

case "$host" in
  127.*|localhost|::1) ;;
  *) echo "RabbitMQ at $host:$port (from AMQP_URI) does not answer; start it there or fix AMQP_URI." >&2; exit 1 ;;
esac

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
can_be_root() { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }

if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
  if can_be_root && command -v apt-get >/dev/null 2>&1; then
    echo "Installing RabbitMQ with apt-get ..."
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server
  else
    cat >&2 <<MSG
RabbitMQ is not installed and this user cannot install it. Do one of:
  sudo apt-get install -y rabbitmq-server && sudo systemctl start rabbitmq-server
  (in a container without systemd: sudo rabbitmq-server -detached)
or point AMQP_URI at a running broker, e.g. AMQP_URI=amqp://user:pass@host:5672/ make run
MSG
    exit 1
  fi
fi

reachable && exit 0
if can_be_root; then
  echo "Starting RabbitMQ ..."
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl start rabbitmq-server
  else
    as_root env HOME=/var/lib/rabbitmq rabbitmq-server -detached
  fi
  wait_for_broker
else
  cat >&2 <<MSG
RabbitMQ is installed but not running on $host:$port, and starting it needs root. Run:
  sudo systemctl start rabbitmq-server      (or, without systemd: sudo rabbitmq-server -detached)
then run this command again.
MSG
  exit 1
fi
