#!/usr/bin/env bash
# Makes sure the services Herald's tests use are running on this machine, and that PostgreSQL
# has logical replication on (wal_level=logical, needed by the CDC source). Safe to run twice.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 0.5; done
  echo "ensure-services: $name did not come up on port $port" >&2
  return 1
}

start_if_down() {
  local port=$1 name=$2; shift 2
  if port_open "$port"; then return 0; fi
  echo "ensure-services: starting $name"
  "$@" >/dev/null 2>&1 || true
  wait_port "$port" "$name"
}

pg_start() { pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start; }

start_if_down 5432 PostgreSQL pg_start
start_if_down 6379 Redis redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
start_if_down 4222 NATS start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log

psql_q() { psql -h 127.0.0.1 -U postgres -d test -Atc "$1" 2>/dev/null || psql -h 127.0.0.1 -d test -Atc "$1"; }

level=$(psql_q "show wal_level")
if [ "$level" != "logical" ]; then
  echo "ensure-services: PostgreSQL wal_level is '$level'; setting logical and restarting the cluster"
  psql_q "alter system set wal_level = logical" >/dev/null
  psql_q "alter system set max_replication_slots = 20" >/dev/null
  psql_q "alter system set max_wal_senders = 20" >/dev/null
  version=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main restart
  wait_port 5432 PostgreSQL
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -q && break; sleep 0.5; done
  level=$(psql_q "show wal_level")
  [ "$level" = "logical" ] || { echo "ensure-services: could not set wal_level=logical" >&2; exit 1; }
fi
echo "ensure-services: PostgreSQL (wal_level=$level), Redis, NATS are up"
