#!/usr/bin/env bash
# Make sure the Redis server named by REDIS_URL answers. When it is the local default and
# nothing answers, start one in the background with its files under var/redis: an append-only
# file, so that queued tasks and serving generations survive a restart (at most a second lost).
set -euo pipefail

url=${REDIS_URL:-redis://127.0.0.1:6379/0}
hostport=${url#redis://}
hostport=${hostport%%/*}
hostport=${hostport##*@}
host=${hostport%%:*}
port=${hostport##*:}
[ "$port" = "$host" ] && port=6379

if redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG; then
  exit 0
fi
case "$host" in
  127.0.0.1|localhost) ;;
  *) echo "Redis at $url does not answer; start it or fix REDIS_URL." >&2; exit 1 ;;
esac

mkdir -p var/redis var/log
redis-server --bind "$host" --port "$port" --daemonize yes --dir "$PWD/var/redis" \
  --logfile "$PWD/var/log/redis.log" --pidfile "$PWD/var/redis/redis.pid" --save "" \
  --appendonly yes --appendfsync everysec
for _ in $(seq 50); do
  redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG && { echo "Redis started on $host:$port"; exit 0; }
  sleep 0.1
done
echo "Redis did not start; see var/log/redis.log" >&2
exit 1
