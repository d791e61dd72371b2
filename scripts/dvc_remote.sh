#!/usr/bin/env bash
# Make DVC_REMOTE_URL (s3://bucket/prefix) the default DVC remote of this checkout, reached at
# S3_ENDPOINT_URL (an S3-compatible store; empty: AWS). Credentials come the way boto3 finds them
# (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION, or an instance role).
# Written to .dvc/config.local (not committed): the committed .dvc/config keeps the local remote
# under var/ for one machine. Afterwards `dvc push` / `dvc pull` move the datasets.
set -euo pipefail

cd "$(dirname "$0")/.."
: "${DVC_REMOTE_URL:?set DVC_REMOTE_URL, e.g. s3://bucket/dvc}"
dvc remote add --local --default --force storage "$DVC_REMOTE_URL"
if [ -n "${S3_ENDPOINT_URL:-}" ]; then
  dvc remote modify --local storage endpointurl "$S3_ENDPOINT_URL"
else
  dvc remote modify --local --unset storage endpointurl
fi
echo "DVC remote 'storage' (default): $DVC_REMOTE_URL${S3_ENDPOINT_URL:+ at $S3_ENDPOINT_URL}"
