"""Export a pre-trained encoder as safetensors with timm's key names, plus a JSON of its shape."""

from __future__ import annotations

import json
import os
from pathlib import Path

from vitssl.engine.checkpoint import write_failure
from vitssl.errors import CheckpointError
from vitssl.evaluation.encoders import load_encoder


def export_encoder(source: str, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write OUT.safetensors (encoder weights only) and OUT.json (arch, method, step); returns both paths."""
    try:
        from safetensors.torch import save_file
    except ImportError:  # pragma: no cover
        raise CheckpointError("export needs the 'safetensors' package: pip install safetensors") from None
    if source == "random":
        raise CheckpointError("nothing to export from 'random'; give a run folder or a checkpoint")
    encoder, info = load_encoder(source)
    out = Path(out)
    out = out if out.suffix == ".safetensors" else out.with_name(out.name + ".safetensors")
    state = {k: v.contiguous() for k, v in encoder.state_dict().items() if not k.startswith("head.")}
    tmp = out.with_name(out.name + ".tmp")
    meta_path = out.with_suffix(".json")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(tmp), metadata={"format": "pt", "library": "vitssl"})
        os.replace(tmp, out)
        meta_path.write_text(json.dumps(_meta(encoder, info), indent=2) + "\n")
    except Exception as e:
        cause = write_failure(e)
        if cause is None:
            raise
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write the export to '{out}': {cause}; choose another --out") from None
    return out, meta_path


def _meta(encoder, info: dict) -> dict:
    return {"arch": encoder.arch, "method": info["method"], "step": info.get("step"), "epoch": info.get("epoch"),
            "source": info["source"],
            "timm": f"timm.create_model('vit_...', num_classes=0, img_size={encoder.arch['img_size']}, "
                    f"patch_size={encoder.arch['patch_size']}, embed_dim={encoder.arch['embed_dim']}, "
                    f"depth={encoder.arch['depth']}, num_heads={encoder.arch['num_heads']}) "
                    "then load_state_dict(safetensors.torch.load_file(path))"}
