"""Where an evaluation's encoder comes from: a run folder, a checkpoint of this library, an exported
safetensors file, a timm-format state dict, or a random initialisation.

Whatever the source, the result is a `VisionTransformer` plus a small description of where it came
from (method, step, file), so that every result names what it measured.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch

from vitssl.engine import checkpoint as ckpt
from vitssl.errors import CheckpointError, first_line
from vitssl.models.vit import VisionTransformer

TIMM_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}  # timm's presets: width -> heads


def checkpoint_file(source: str | Path) -> Path:
    """A run folder means its checkpoints/last.pt; a file is itself."""
    path = Path(source).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.pt", path / "last.pt"):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"'{path}' is a folder without checkpoints/last.pt; give a run folder of "
                              "`vitssl pretrain`, a checkpoint file, or 'random'")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist; give a run folder, a .pt or .safetensors file, "
                              "or 'random'")
    return path


def fingerprint(path: Path) -> str:
    """SHA-256 of a file's content (feature caches key on it: a file rewritten in place, or copied
    elsewhere, is identified by what it holds, not by its name or time)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:24]


def weights_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 of a module's weights (a random encoder is identified by the numbers it holds)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def arch_from_state(state: dict[str, torch.Tensor], num_heads: int | None = None) -> dict[str, Any]:
    """Infer a ViT's shape from timm-style weights (heads are not in the weights: timm's presets, or given)."""
    try:
        w = state["patch_embed.proj.weight"]  # (D, C, P, P)
        pos = state["pos_embed"]  # (1, 1 + N, D)
    except KeyError as e:
        raise CheckpointError(f"these weights are not a ViT encoder: no '{e.args[0]}' "
                              "(expected timm VisionTransformer keys)") from None
    dim, chans, patch = w.shape[0], w.shape[1], w.shape[2]
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    n = pos.shape[1] - 1
    side = int(round(n ** 0.5))
    if side * side != n:
        raise CheckpointError(f"pos_embed has {n} patch positions, not a square grid (or several prefix tokens); "
                              "only single-CLS square-grid ViTs can be loaded")
    heads = num_heads or TIMM_HEADS.get(dim) or max(1, dim // 64)
    hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
    return dict(img_size=side * patch, patch_size=patch, in_chans=chans, embed_dim=dim, depth=depth, num_heads=heads,
                mlp_ratio=hidden / dim, qkv_bias="blocks.0.attn.qkv.bias" in state, pos_embed="learned")


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    try:
        from safetensors.torch import load_file
    except ImportError:  # pragma: no cover
        raise CheckpointError("reading .safetensors needs the 'safetensors' package: pip install safetensors") from None
    try:
        state = load_file(str(path))
    except Exception as e:
        raise CheckpointError(f"cannot read '{path}': {first_line(e)}") from None
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return state, meta


def _read_torch(path: Path) -> tuple[dict, dict]:
    """Our checkpoint (with its marker) or a timm-format state dict (plain, or under 'model'/'state_dict')."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(ckpt.load_error(path, e)) from None
    if isinstance(obj, dict) and obj.get("format") == ckpt.FORMAT:
        state = {k[len("encoder."):]: v for k, v in obj["model"].items() if k.startswith("encoder.")}
        meta = {"method": obj.get("method"), "arch": obj.get("encoder"), "step": obj.get("step"),
                "epoch": obj.get("epoch"), "config": obj.get("config")}
        return state, meta
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "module"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj), {"method": "timm"}
    raise CheckpointError(f"'{path}' holds neither a vitssl checkpoint nor a state dict of tensors")


def load_encoder(source: str, *, model_cfg=None, image_size: int | None = None,
                 seed: int = 0) -> tuple[VisionTransformer, dict]:
    """(encoder, info). `model_cfg` (a ModelConfig) shapes a random encoder and gives missing head counts;
    `image_size` resamples the position grid when it differs from the checkpoint's."""
    if source == "random":
        if model_cfg is None or image_size is None:
            raise CheckpointError("a random encoder needs the model section and data.image_size")
        from vitssl.models.vit import encoder_from_config

        torch.manual_seed(seed)
        enc = encoder_from_config(model_cfg, image_size)
        return enc, {"method": "random", "source": "random", "id": f"random-{weights_fingerprint(enc)}"}
    path = checkpoint_file(source)
    state, meta = _read_safetensors(path) if path.suffix == ".safetensors" else _read_torch(path)
    arch = dict(meta.get("arch") or arch_from_state(state, getattr(model_cfg, "num_heads", None)))
    arch.pop("num_classes", None)
    if image_size is not None:
        arch["img_size"] = image_size
    enc = VisionTransformer(**arch)
    enc.load_encoder_state(state)
    info = {"method": meta.get("method") or "unknown", "source": str(path), "id": fingerprint(path),
            "step": meta.get("step"), "epoch": meta.get("epoch")}
    if meta.get("config"):
        info["pretrain_config"] = meta["config"]
    return enc, info
