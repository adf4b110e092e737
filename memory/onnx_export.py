"""Export a sentence-transformers model (transformer, mean pooling, L2 normalisation) to ONNX.

Run as a script in a child process by `memory.onnx_embeddings`, so that the process which will
serve the model never imports torch:

    python memory/onnx_export.py MODEL_DIR OUT_DIR

Writes into OUT_DIR:
- `model.onnx`: fp32, the transformer with pooling and normalisation inside the graph, then
  fused by ONNX Runtime's transformer optimiser (LayerNorm, GELU); checked against the PyTorch
  model on sample texts (largest difference at most `FP32_TOLERANCE`), else the export fails;
- `model-int8.onnx`: the same graph with its MatMul weights quantised to int8 per channel, and
  activations quantised dynamically at run time;
- `export.json`: what was checked (written last: a directory without it is incomplete).

Nothing here reaches the network: the weights come from the local model directory.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

FP32_TOLERANCE = 1e-5
CHECK_TEXTS = (
    "When did Caroline go to the LGBTQ support group?",
    "a",
    "Melanie: I painted that lake sunrise last year! It's special to me. [image: a painting of a sunset]",
    "今天下午三点开会 " * 20,
    "The deploy step uses tool 7; the review step runs after the build. " * 12,
)
HEADS_BY_HIDDEN = {384: 12, 768: 12, 1024: 16}


def _wrapped(model: Any) -> Any:
    import torch

    transformer = model[0].auto_model

    class SentenceEmbedding(torch.nn.Module):
        """The transformer, mean pooling over the attention mask, and L2 normalisation."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            tokens = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            )[0]
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return SentenceEmbedding().eval()


def _session_vectors(path: Path, model_dir: Path, max_length: int) -> Any:
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding()
    encoded = tokenizer.encode_batch(list(CHECK_TEXTS))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {
        "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
    }
    return session.run(None, feed)[0]


def export(model_dir: Path, out_dir: Path) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import numpy as np
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from sentence_transformers import SentenceTransformer

    started = time.monotonic()
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    hidden, max_length = model.get_sentence_embedding_dimension(), model.max_seq_length
    if hidden is None or max_length is None:
        raise RuntimeError("the model states no embedding dimension or maximum sequence length")
    expected = model.encode(list(CHECK_TEXTS), normalize_embeddings=True, convert_to_numpy=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "raw.onnx"
    example = model.tokenizer(["an example to trace", "two"], padding=True, return_tensors="pt")
    inputs = (example["input_ids"], example["attention_mask"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on Python-level branches of the attention code
        # The TorchScript exporter: one self-contained file and a graph ONNX Runtime's BERT optimiser knows.
        torch.onnx.export(
            _wrapped(model),
            inputs,
            str(raw),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    fp32 = out_dir / "model.onnx"
    optimised = optimize_model(
        str(raw), model_type="bert", num_heads=HEADS_BY_HIDDEN.get(hidden, 0), hidden_size=hidden, opt_level=1
    )
    optimised.save_model_to_file(str(fp32))
    raw.unlink()
    fp32_error = float(np.abs(_session_vectors(fp32, model_dir, max_length) - expected).max())
    if fp32_error > FP32_TOLERANCE:
        raise RuntimeError(f"the ONNX export differs from the model by {fp32_error:.2e}")
    int8 = out_dir / "model-int8.onnx"
    # Per channel: one scale per output column. One scale per tensor (the default) lost a tenth
    # of the cosine similarity on some texts. The word embeddings (Gather) are most of the weights.
    quantize_dynamic(
        str(fp32),
        str(int8),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gather"],
        extra_options={"DefaultTensorType": 1},  # fused ops hide some types from shape inference
    )
    int8_cosine = (_session_vectors(int8, model_dir, max_length) * expected).sum(1)
    report = {
        "dimensions": hidden,
        "max_seq_length": max_length,
        "fp32_max_abs_error": fp32_error,
        "int8_min_cosine": float(int8_cosine.min()),
        "seconds": round(time.monotonic() - started, 1),
    }
    return report


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    report = export(Path(argv[1]), Path(argv[2]))
    (Path(argv[2]) / "export.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
