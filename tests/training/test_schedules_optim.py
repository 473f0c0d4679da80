import math

import torch

from vitssl.models import VisionTransformer
from vitssl.training.optim import param_groups, set_hyperparams
from vitssl.training.schedules import cosine, warmup_cosine


def test_warmup_then_cosine():
    lrs = [warmup_cosine(s, 100, 10, 1.0, 0.0) for s in range(100)]
    assert lrs[0] == 0.1 and lrs[9] == 1.0
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert math.isclose(warmup_cosine(55, 100, 10, 1.0, 0.0), 0.5)
    assert cosine(0, 10, 0.04, 0.1) == 0.04 and math.isclose(cosine(10, 10, 0.04, 0.1), 0.1)


def test_no_decay_on_biases_norms_positions_and_cls():
    m = VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2)
    decay, no_decay = param_groups(m)
    names = {id(p): n for n, p in m.named_parameters()}
    nd = {names[id(p)] for p in no_decay["params"]}
    assert {"pos_embed", "cls_token", "norm.weight", "blocks.0.attn.qkv.bias"} <= nd
    assert all(names[id(p)].endswith("weight") and p.ndim >= 2 for p in decay["params"])
    opt = torch.optim.AdamW([decay, no_decay])
    set_hyperparams(opt, 0.1, 0.05)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert all(g["lr"] == 0.1 for g in opt.param_groups)
