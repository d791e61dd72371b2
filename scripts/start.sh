#!/usr/bin/env bash
# One command per process kind: the Procfile, the container image and the scale-out test all run
#   scripts/start.sh web|worker|trainer|monitor|beat
# Each role replaces this shell with its server (exec), so signals reach it directly.
#
#   web      gunicorn (gunicorn.conf.py: BIND, WEB_WORKERS, WEB_THREADS, WEB_TIMEOUT, WEB_KEEPALIVE, WEB_ACCESS_LOG)
#   worker   Celery on CELERY_QUEUES (default: default,batch), WORKER_CONCURRENCY processes
#   trainer  Celery on the training queue: one job at a time, a fresh process per job
#   monitor  Celery on the monitoring queue (drift, performance roll-ups, shadow comparisons)
#   beat     the one scheduler of the whole installation (django-celery-beat's tables)
#
# CELERY_HOSTNAME names the Celery node (default ROLE@host); give each node on one host its own.
set -euo pipefail

cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-backend.config.settings}
export MLFLOW_ALLOW_PICKLE_DESERIALIZATION=${MLFLOW_ALLOW_PICKLE_DESERIALIZATION:-false}
# glibc keeps one malloc arena per thread by default; 2 keeps threaded processes' memory flat.
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}

role=${1:-}
loglevel=${LOG_LEVEL:-INFO}
node=${CELERY_HOSTNAME:-${role}@%h}

case "$role" in
  web)
    exec gunicorn -c gunicorn.conf.py backend.config.wsgi
    ;;
  worker)
    exec celery -A backend worker --queues "${CELERY_QUEUES:-default,batch}" \
      --concurrency "${WORKER_CONCURRENCY:-2}" --hostname "$node" --loglevel "$loglevel"
    ;;
  trainer)
    exec celery -A backend worker --queues training --concurrency 1 --max-tasks-per-child 1 \
      --hostname "$node" --loglevel "$loglevel"
    ;;
  monitor)
    exec celery -A backend worker --queues monitoring --concurrency "${MONITOR_CONCURRENCY:-1}" \
      --hostname "$node" --loglevel "$loglevel"
    ;;
  beat)
    exec celery -A backend beat --scheduler django_celery_beat.schedulers:DatabaseScheduler \
      --loglevel "$loglevel"
    ;;
  *)
    echo "usage: $0 web|worker|trainer|monitor|beat" >&2
    exit 2
    ;;
esac
