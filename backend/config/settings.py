"""Settings for the whole product: one module, every knob from the environment.

Embedded defaults run everything on one machine (SQLite, files under var/, an MLflow store
under var/, Redis on 127.0.0.1). DATABASE_URL, REDIS_URL and MLFLOW_TRACKING_URI switch to
real servers. `.env.example` lists every variable.
"""

import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from mlops.config import apply_library_env, default_artifact_root, library_env

BASE_DIR = Path(__file__).resolve().parents[2]

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

# An S3-compatible object store (MinIO, Ceph, moto...) for media, MLflow's s3:// artifacts and the DVC
# remote; empty: AWS itself. Credentials and region come the way boto3 looks for them (AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, or an instance role).
S3_ENDPOINT_URL = env.str("S3_ENDPOINT_URL", default="")

# What MLflow and Ultralytics need (never unpickle, stay offline, write under var/): every
# process that imports settings inherits it.
apply_library_env(library_env(VAR_DIR, s3_endpoint_url=S3_ENDPOINT_URL))

# Metrics: every process (gunicorn workers, Celery) writes its values into files here and GET /metrics
# merges them (backend.core.metrics). prometheus_client reads the variable when it is first imported,
# which is after this module in every process (Django loads settings before any app). Empty: every
# process keeps its own values and /metrics shows only those of the process that answers.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "prometheus"))
if PROMETHEUS_MULTIPROC_DIR:
    PROMETHEUS_MULTIPROC_DIR = str(Path(PROMETHEUS_MULTIPROC_DIR).resolve())
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
else:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # prometheus_client takes even "" for a directory


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in var/."""
    if key := env.str("SECRET_KEY", default=""):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS (production) ---------------------------------------------------------------------
# Off for `make run` on http://127.0.0.1; on behind TLS, where it redirects plain HTTP (but not the
# load balancer's /health and Prometheus' /metrics), marks cookies secure and sends HSTS.
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^health/?$", r"^metrics$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
# Preload lists need all three; turn off before a site that might go back to HTTP is submitted.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS)
# Behind a proxy that ends TLS: the header (and value) it sets on HTTPS requests, e.g.
# "X-Forwarded-Proto: https". Only set it when that proxy overwrites the header on every request.
_proxy_ssl = env.str("SECURE_PROXY_SSL_HEADER", default="")
if _proxy_ssl:
    _header, _, _value = _proxy_ssl.partition(":")
    if not _value.strip():
        raise ImproperlyConfigured('SECURE_PROXY_SSL_HEADER: "Header-Name: value", e.g. "X-Forwarded-Proto: https"')
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _header.strip().upper().replace("-", "_"), _value.strip())
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "django_prometheus",
    "backend.core",
    "backend.registry",
    "backend.training",
    "backend.serving",
    "backend.detection",
    "backend.scoring",
    "backend.classification",
    "backend.monitoring",
    "backend.alerting",
]

# django-prometheus times the whole stack: its Before middleware first, its After middleware last.
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads a body: an oversized one is refused from its Content-Length.
    "backend.core.uploads.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After everything that authenticates: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "backend.config.urls"
WSGI_APPLICATION = "backend.config.wsgi.application"
ASGI_APPLICATION = "backend.config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; IMMEDIATE takes the write lock at
    # the start of a transaction so two writers queue instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so a Celery worker started by the tests sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
# django-prometheus' wrapper of the same backend counts connections, queries and their duration.
DATABASES["default"]["ENGINE"] = {
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
}.get(DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"])
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Reuse connections for a minute: opening one per request costs more than the query.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (serving generation, locks) ------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="modelyard"),
        "TIMEOUT": None,
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Media (uploads, prediction images, thumbnails, batch inputs, drift reports) go to this bucket when
# set, else under MEDIA_ROOT. Every web process and worker then shares them; our own views read them
# back (with their permissions and throttles), so the bucket stays private and needs no public URL.
MEDIA_BUCKET = env.str("MEDIA_BUCKET", default="")
_media_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
if MEDIA_BUCKET:
    _media_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": MEDIA_BUCKET,
            "endpoint_url": S3_ENDPOINT_URL or None,
            "region_name": env.str("AWS_DEFAULT_REGION", default="") or None,
            # Objects inherit the bucket's (private) policy; links, if ever made, are signed.
            "default_acl": None,
            "querystring_auth": True,
            # As on the filesystem: a name already taken gets a suffix instead of replacing the object.
            "file_overwrite": False,
        },
    }
STORAGES = {
    "default": _media_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploads above this many bytes are refused before they reach a model.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("UPLOAD_MAX_BYTES", default=20 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
# A batch upload (a zip, or many images) may be this large; every other body one image's size.
BATCH_UPLOAD_MAX_BYTES = env.int("BATCH_UPLOAD_MAX_BYTES", default=512 * 1024 * 1024)

LOGIN_URL = "admin:login"

# --- Accounts and sign-in -------------------------------------------------------------------
# django-axes counts failed sign-ins (the admin's login form, and HTTP Basic on the API when it is on)
# per client address (backend.core.clients: forwarded headers only from API_TRUSTED_PROXIES) and
# refuses that address for LOGIN_LOCKOUT_MINUTES after LOGIN_FAILURE_LIMIT of them (429 on the form).
# A successful sign-in clears the count; `manage.py axes_reset` lifts every lockout.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_LOCKOUT_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_CLIENT_IP_CALLABLE = "backend.core.clients.client_ip"
AXES_RESET_ON_SUCCESS = True
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME.total_seconds() <= 0:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES must be positive")

# HTTP Basic (a password on every request, no CSRF, nothing to revoke) is off unless asked for; API
# clients send `Authorization: Token <key>` (tokens made in the admin or by `manage.py drf_create_token`).
API_BASIC_AUTH = env.bool("API_BASIC_AUTH", default=False)


def _authentication_classes(basic: bool) -> list[str]:
    """Token first: DRF answers a request without credentials with the first class's challenge
    (401 with `WWW-Authenticate: Token`); the session keeps its CSRF check on unsafe methods."""
    classes = [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ]
    return [*classes, "rest_framework.authentication.BasicAuthentication"] if basic else classes


# --- REST API -------------------------------------------------------------------------------
# Nothing is open by accident: every view names its permission; the default is authenticated.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": _authentication_classes(API_BASIC_AUTH),
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "backend.core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "backend.core.errors.api_exception_handler",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "Modelyard API",
    "DESCRIPTION": "Detection and tabular models: registry, serving, training and monitoring.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation documents the errors it can answer, nullable answers and binary uploads
    # (backend.core.schema); schemathesis holds the API to it (tests/test_api_schema.py).
    "DEFAULT_GENERATOR_CLASS": "backend.core.schema.SchemaGenerator",
    # Several models have a `status`/`kind`; name each enum after its model in the schema.
    "ENUM_NAME_OVERRIDES": {
        "TrainingJobStatusEnum": "backend.training.models.TrainingJob.Status",
        "TrainingJobKindEnum": "backend.training.models.TrainingJob.Kind",
        "ModelVersionStatusEnum": "backend.registry.models.ModelVersion.Status",
        "ModelKindEnum": "backend.registry.models.RegisteredModel.Kind",
        "BatchStatusEnum": "backend.serving.models.PredictionBatch.Status",
    },
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
# A task killed with its worker goes back to the queue instead of vanishing.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers a task still unacknowledged after the visibility timeout, so every time
# limit stays below it (training is the longest).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=4 * 3600)}
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
# One queue per kind of work, each with its own worker command (scripts/start.sh): training on
# the trainer hosts, monitoring on the monitoring worker, batches of uploads on the batch queue so
# that a large zip never delays alerts and reconcilers on the default queue.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    # The reaper must run while the trainer is busy with a job, or dead: it goes to the default worker.
    "training.reap_stale_jobs": {"queue": "default"},
    "training.*": {"queue": "training"},
    "monitoring.*": {"queue": "monitoring"},
    # The batch reapers send lost batches again: they go where the batches run.
    "detection.run_batch": {"queue": "batch"},
    "detection.reap_stale_batches": {"queue": "batch"},
    "classification.run_batch": {"queue": "batch"},
    "classification.reap_stale_batches": {"queue": "batch"},
}
# Publishing gives up quickly when the broker is down; the caller records the failure.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Libraries that print (Ultralytics' progress bars) land in the log at INFO, not as warnings.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- MLflow, Ultralytics and the mlops package ----------------------------------------------
MLFLOW_TRACKING_URI = env.str("MLFLOW_TRACKING_URI", default=f"sqlite:///{VAR_DIR / 'mlflow.db'}")
MLFLOW_REGISTRY_URI = env.str("MLFLOW_REGISTRY_URI", default=MLFLOW_TRACKING_URI)
# Where new experiments keep their artifacts. Unset: under var/ for the embedded store; with a tracking
# server (http/https), wherever the server keeps them (`mlflow server --serve-artifacts
# --artifacts-destination s3://...`: clients upload and download through the server).
MLFLOW_ARTIFACT_ROOT = env.str("MLFLOW_ARTIFACT_ROOT", default=default_artifact_root(MLFLOW_TRACKING_URI, VAR_DIR))
MLFLOW_EXPERIMENT = env.str("MLFLOW_EXPERIMENT", default="modelyard")
MLFLOW_UI_URL = env.str("MLFLOW_UI_URL", default="")

# --- Registry -------------------------------------------------------------------------------
# When on, promotion to production needs a request by one staff user and approval by another.
REGISTRY_REQUIRE_APPROVAL = env.bool("REGISTRY_REQUIRE_APPROVAL", default=False)
# Versions whose artifacts `cleanup_versions` keeps (besides production and the one before).
REGISTRY_KEEP_VERSIONS = env.int("REGISTRY_KEEP_VERSIONS", default=5)

# --- Demo admin (make run) ------------------------------------------------------------------
# `ensure_demo_admin` creates this superuser once. Without DEMO_ADMIN_PASSWORD it gets a random password,
# printed that once and kept nowhere else; with DEBUG on, the documented demo password "admin" instead.
DEMO_ADMIN_USERNAME = env.str("DEMO_ADMIN_USERNAME", default="admin")
DEMO_ADMIN_PASSWORD = env.str("DEMO_ADMIN_PASSWORD", default="")

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"terminal_redraws": {"()": "backend.core.logging.TerminalRedrawFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # What Celery redirects from stdout: Ultralytics' progress bars keep only their final line.
        "celery.redirected": {"filters": ["terminal_redraws"]},
        "django.request": {"level": "WARNING"},
        "alembic": {"level": "WARNING"},
        "mlflow": {"level": "WARNING"},
        # django-axes: failed sign-ins and lockouts are warnings; its INFO lines repeat them (and a banner).
        "axes": {"level": "WARNING"},
    },
}

# --- Inputs ---------------------------------------------------------------------------------
# Our own caps on decoded images (Pillow's limit lets a 10 KB PNG cost 400 MB of memory).
MAX_IMAGE_PIXELS = env.int("MAX_IMAGE_PIXELS", default=40_000_000)
MAX_IMAGE_SIDE = env.int("MAX_IMAGE_SIDE", default=12_000)

# --- Serving --------------------------------------------------------------------------------
# The registered models the upload page, /api/v1/detections/, /predict, the scoring form and
# /api/v1/classifications/ use.
DEFAULT_DETECTION_MODEL = env.str("DEFAULT_DETECTION_MODEL", default="shapes-detector")
DEFAULT_TABULAR_MODEL = env.str("DEFAULT_TABULAR_MODEL", default="breast-cancer")
DEFAULT_CLASSIFICATION_MODEL = env.str("DEFAULT_CLASSIFICATION_MODEL", default="shapes-classifier")
# Which kind answers the compatibility routes POST /predict and GET /model/info: "detection" (the
# default detector, the answer of POST /api/v1/detections/) or "classification" (the default
# classifier, with the `prediction` and `confidence` fields of the classifier services it replaces).
COMPAT_PREDICT_KIND = env.str("COMPAT_PREDICT_KIND", default="detection")
if COMPAT_PREDICT_KIND not in ("detection", "classification"):
    raise ImproperlyConfigured(f"COMPAT_PREDICT_KIND must be detection or classification, not {COMPAT_PREDICT_KIND!r}")
# What runs the image models' ONNX files: "openvino" (OpenVINO's CPU plugin, float32: a YOLO 1.5-1.7x
# faster than on ONNX Runtime on an AVX-512 Xeon, ~1.05x on an AVX2 EPYC, for ~100 MB more per
# process), "onnxruntime", or "auto": OpenVINO where the CPU has AVX-512, ONNX Runtime elsewhere. A
# graph OpenVINO cannot compile runs on ONNX Runtime instead; tabular models always run on ONNX Runtime.
SERVING_ENGINE = env.str("SERVING_ENGINE", default="auto")
if SERVING_ENGINE not in ("auto", "openvino", "onnxruntime"):
    raise ImproperlyConfigured(f"SERVING_ENGINE must be auto, openvino or onnxruntime, not {SERVING_ENGINE!r}")
# Where OpenVINO keeps the models it compiled, so that a restart imports them instead of compiling
# them again (empty: compile at every load). One per host: the blobs are compiled for its CPU.
SERVING_OPENVINO_CACHE_DIR = env.str("SERVING_OPENVINO_CACHE_DIR", default=str(VAR_DIR / "cache" / "openvino"))
# Inference threads per model (0: let the engine decide, one per core).
SERVING_INTRA_OP_THREADS = env.int("SERVING_INTRA_OP_THREADS", default=0)
# ONNX Runtime's worker threads spin while a run lasts and stop as it returns: about 15% faster per
# detection on an inference host, slower when training shares the CPU (then set it to false).
SERVING_ONNX_SPINNING = env.bool("SERVING_ONNX_SPINNING", default=True)
# Concurrent predictions per model and process (0: no cap). ONNX Runtime already spreads one run
# over every core, so 1 keeps the cores busy without oversubscribing them, and bounds memory (each
# concurrent run holds its own buffers); the web process's other threads decode and answer
# meanwhile. The Procfile runs one web process with 8 threads for the same reason.
SERVING_CONCURRENT_PREDICTIONS = env.int("SERVING_CONCURRENT_PREDICTIONS", default=1)
# Stored upload images older than this are deleted (the prediction rows stay).
PREDICTION_IMAGE_RETENTION_DAYS = env.int("PREDICTION_IMAGE_RETENTION_DAYS", default=30)
# Callers of the prediction endpoints are throttled: anonymous ones per client address, signed-in
# ones per user; while the cache (Redis) is down each web process counts alone at the fallback rate.
API_ANON_RATE = env.str("API_ANON_RATE", default="120/min")
API_USER_RATE = env.str("API_USER_RATE", default="1200/min")
API_FALLBACK_RATE = env.str("API_FALLBACK_RATE", default="60/min")
# Pictures read back (annotated, heatmap, image, thumbnail), per caller.
API_READBACK_RATE = env.str("API_READBACK_RATE", default="300/min")

# --- Shadow mode (monitoring) ---------------------------------------------------------------
# A model's staging version answers a sample of live predictions again on the monitoring worker
# (ShadowSettings in the admin), in one thread per worker process whose ONNX Runtime session uses
# SHADOW_INTRA_OP_THREADS threads. SHADOW_PRIORITY of that thread: "idle" (Linux's SCHED_IDLE: it
# runs only on a core nothing else wants; niceness 19 where there is no SCHED_IDLE), "low"
# (niceness 19) or "normal". bench/bench_shadow.py measures what each costs production.
SHADOW_INTRA_OP_THREADS = env.int("SHADOW_INTRA_OP_THREADS", default=1)
SHADOW_PRIORITY = env.str("SHADOW_PRIORITY", default="idle")
if SHADOW_PRIORITY not in ("idle", "low", "normal"):
    raise ImproperlyConfigured(f"SHADOW_PRIORITY must be idle, low or normal, not {SHADOW_PRIORITY!r}")


# --- Metrics (GET /metrics) -----------------------------------------------------------------
def _networks(name: str, default: list[str]) -> list[str]:
    """Client networks, checked here so that a typo fails at start-up rather than refusing every scrape."""
    networks = [network.strip() for network in env.list(name, default=default) if network.strip()]
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {network!r} is not an IP address or network") from exc
    return networks


# Prometheus scrapes without a session: a scrape is answered when it comes straight (no proxy
# header) from one of these networks, or carries `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_ALLOW = _networks("METRICS_ALLOW", default=["127.0.0.0/8", "::1"])
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# The reverse proxies in front of the app: only a request from one of them has its X-Forwarded-For
# believed (rate limits and logs then see the client behind it). Empty: no forwarded header counts.
API_TRUSTED_PROXIES = _networks("API_TRUSTED_PROXIES", default=[])

# --- Training -------------------------------------------------------------------------------
# Datasets prepared for training jobs (ingested, validated, split) live here.
TRAINING_DATA_DIR = Path(env.str("TRAINING_DATA_DIR", default=str(VAR_DIR / "datasets")))
# A running job whose worker has not reported for this long is marked failed by the reaper.
TRAINING_STALE_AFTER_SECONDS = env.int("TRAINING_STALE_AFTER_SECONDS", default=900)
# The device YOLO jobs train on when a job does not name one: "" keeps params.yaml's (cpu); "0" or
# "0,1" for CUDA GPUs of a trainer host, "mps" on Apple silicon. Set it per trainer host.
TRAINING_DEVICE = env.str("TRAINING_DEVICE", default="")
# `make run` trains these when the registry is empty, and promotes them once trained.
BOOTSTRAP_DETECTOR_EPOCHS = env.int("BOOTSTRAP_DETECTOR_EPOCHS", default=30)
BOOTSTRAP_DETECTOR_IMGSZ = env.int("BOOTSTRAP_DETECTOR_IMGSZ", default=160)
# The first detector: "pretrained" registers Ultralytics' COCO-pretrained yolo26n (80 classes) as
# DEFAULT_DETECTION_MODEL, "shapes" trains one on synthetic shapes, "auto" tries the first and falls
# back to the second within seconds when Ultralytics' releases cannot be reached.
BOOTSTRAP_DETECTOR = env.str("BOOTSTRAP_DETECTOR", default="auto")
if BOOTSTRAP_DETECTOR not in ("auto", "pretrained", "shapes"):
    raise ImproperlyConfigured(f"BOOTSTRAP_DETECTOR must be auto, pretrained or shapes, not {BOOTSTRAP_DETECTOR!r}")

# --- Alerting -------------------------------------------------------------------------------
# Email channels send through Django's email backend: smtp://user:password@host:port (or
# submission://... for STARTTLS, smtp+ssl://... for TLS); the default prints mail to the log.
vars().update({key: value for key, value in env.email_url("EMAIL_URL", default="consolemail://").items() if value})
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="modelyard@localhost")
# Links in notifications point here (the address people open the app at).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# Webhooks to private, loopback or link-local addresses are refused unless this is on, so that a
# webhook cannot be used to probe the internal network.
ALERTS_WEBHOOK_ALLOW_PRIVATE = env.bool("ALERTS_WEBHOOK_ALLOW_PRIVATE", default=False)
# A failed delivery is tried again after RETRY_SECONDS, doubling each time (at most an hour), and
# marked failed for good after MAX_ATTEMPTS tries.
ALERTS_RETRY_SECONDS = env.float("ALERTS_RETRY_SECONDS", default=30.0)
ALERTS_MAX_ATTEMPTS = env.int("ALERTS_MAX_ATTEMPTS", default=5)
# Each web process checks this often that beat and the workers still run the monitoring (the dead
# man's switch), and delivers what is due itself; 0 switches it off.
ALERTS_WATCHDOG_SECONDS = env.float("ALERTS_WATCHDOG_SECONDS", default=60.0)
# After a promotion, the new version is looked at this often (seconds) against its rollback policy.
ALERTS_WATCH_CHECK_SECONDS = env.float("ALERTS_WATCH_CHECK_SECONDS", default=10.0)
