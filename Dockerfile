# One image for every process of the product: web, worker, trainer, monitor and beat differ only by
# the role given to scripts/start.sh (docker-compose.yml), exactly as the scale-out test runs them.
#
#   docker build -t modelyard .
#   docker run --rm -p 8000:8000 --env-file .env modelyard web
#
# requirements.txt pins PyTorch's CUDA wheels from PyPI, so the same image trains on a GPU host
# (NVIDIA Container Toolkit) and on CPU everywhere else.
FROM python:3.11-slim-bookworm

# OpenCV (Ultralytics) needs libGL and GLib; pg_isready and redis-cli let the entrypoint of a
# deployment wait for its engines; curl answers the health checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 postgresql-client redis-tools curl \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=backend.config.settings \
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false \
    VAR_DIR=/var/lib/modelyard

# The dependencies first: a code change does not reinstall them.
WORKDIR /app
COPY requirements.txt ./
RUN python -m pip install -r requirements.txt

# An unprivileged user owns only the state directory.
RUN useradd --create-home --uid 10001 modelyard \
    && mkdir -p /var/lib/modelyard \
    && chown modelyard:modelyard /var/lib/modelyard
COPY . .
# Static files are served by the web process (WhiteNoise) from the image.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R modelyard:modelyard /var/lib/modelyard

USER modelyard
EXPOSE 8000
ENTRYPOINT ["/app/scripts/start.sh"]
CMD ["web"]
