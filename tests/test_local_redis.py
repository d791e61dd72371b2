"""The Redis that `make run` starts keeps its data on disk: killed and started again, the queue is still there."""

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_the_local_redis_survives_a_kill(tmp_path):
    port = free_port()
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    start = ["bash", str(ROOT / "scripts" / "ensure_redis.sh")]
    cli = ["redis-cli", "-p", str(port)]
    subprocess.run(start, cwd=tmp_path, env=env, check=True, capture_output=True)
    try:
        subprocess.run([*cli, "RPUSH", "training", "job-1", "job-2"], check=True, capture_output=True)
        time.sleep(1.5)  # appendfsync everysec
        pid = int((tmp_path / "var" / "redis" / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if subprocess.run([*cli, "PING"], capture_output=True).returncode != 0:
                break
            time.sleep(0.1)
        subprocess.run(start, cwd=tmp_path, env=env, check=True, capture_output=True)
        kept = subprocess.run([*cli, "LRANGE", "training", "0", "-1"], check=True, capture_output=True, text=True)
        assert kept.stdout.split() == ["job-1", "job-2"]
    finally:
        subprocess.run([*cli, "SHUTDOWN", "NOSAVE"], capture_output=True)
