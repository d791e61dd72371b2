"""The seed-style detection server: FastAPI + Ultralytics `YOLO(.pt).predict` in process, over HTTP.

    PEER_WEIGHTS=yolo11n.pt python -m uvicorn bench.peers.ultralytics_fastapi:app --port 8001

`POST /predict?conf=0.25&imgsz=640` with the JPEG as the request body answers the boxes as JSON
(xyxy in the photo's pixels, confidence, class). The body is read raw: FastAPI's form uploads
need python-multipart, which this project does not install. The prediction runs in Starlette's
thread pool, as a plain `def` endpoint would.
"""

from __future__ import annotations

import io
import os

from fastapi import FastAPI, HTTPException, Request
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from ultralytics import YOLO

model = YOLO(os.environ["PEER_WEIGHTS"], task="detect")
app = FastAPI(title="Ultralytics in FastAPI")


def detect(jpeg: bytes, conf: float, imgsz: int) -> list[dict]:
    try:
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise HTTPException(status_code=400, detail=f"not an image: {exc}") from exc
    result = model.predict(image, imgsz=imgsz, conf=conf, verbose=False)[0]
    boxes = result.boxes
    return [
        {"xyxy": xyxy, "confidence": confidence, "class_id": int(class_id), "class_name": result.names[int(class_id)]}
        for xyxy, confidence, class_id in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), strict=True)
    ]


@app.post("/predict")
async def predict(request: Request, conf: float = 0.25, imgsz: int = 640) -> dict:
    jpeg = await request.body()
    if not jpeg:
        raise HTTPException(status_code=400, detail="send the image as the request body")
    return {"detections": await run_in_threadpool(detect, jpeg, conf, imgsz)}
