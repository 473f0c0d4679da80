import math
from types import SimpleNamespace

import torch

from vitssl.models import VisionTransformer
from vitssl.training.optim import build_optimizer, param_groups, set_hyperparams
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


def test_fused_adamw_matches_the_per_parameter_loop():
    """The optimiser runs PyTorch's fused AdamW on CPU too; it must follow the plain per-tensor update."""
    cfg = SimpleNamespace(base_lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05)
    torch.manual_seed(0)
    fast = VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2)
    plain = VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2)
    plain.load_state_dict(fast.state_dict())
    opt_fast = build_optimizer(fast, cfg, torch.device("cpu"))
    assert opt_fast.defaults["fused"]
    opt_plain = torch.optim.AdamW(param_groups(plain), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05,
                                  foreach=False)
    for step in range(5):  # the same gradients for both: the optimisers alone are compared
        grads = [torch.randn_like(p) * 10.0 ** -step for p in fast.parameters()]
        for model, opt in ((fast, opt_fast), (plain, opt_plain)):
            set_hyperparams(opt, 1e-3, 0.05)
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone()
            opt.step()
    for (name, a), b in zip(fast.state_dict().items(), plain.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), (name, (a - b).abs().max())
