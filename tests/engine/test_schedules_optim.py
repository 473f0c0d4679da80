import math
from types import SimpleNamespace

import pytest
import torch

from vitssl.config import load_config
from vitssl.engine.optim import build_optimizer, clip_gradients, param_groups, set_hyperparams
from vitssl.engine.schedules import cosine, warmup_cosine
from vitssl.models import VisionTransformer


def test_warmup_then_cosine():
    lrs = [warmup_cosine(s, 100, 10, 1.0, 0.0) for s in range(100)]
    assert lrs[0] == 0.1 and lrs[9] == 1.0
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert math.isclose(warmup_cosine(55, 100, 10, 1.0, 0.0), 0.5)
    assert cosine(0, 10, 0.04, 0.1) == 0.04 and math.isclose(cosine(10, 10, 0.04, 0.1), 0.1)


def _names(m, group):
    names = {id(p): n for n, p in m.named_parameters()}
    return {names[id(p)] for p in group["params"]}


def test_weight_decay_follows_the_official_rule_unless_names_are_exempted():
    """Official SiT: every parameter of more than one dimension that is not a bias decays (pos_embed and
    cls_token too); full names a task declares (`exempt`) and `optim.no_decay`'s last name parts do not."""
    m = VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2)
    decay, no_decay = param_groups(m)
    assert {"pos_embed", "cls_token"} <= _names(m, decay)
    assert {n for n, p in m.named_parameters() if p.ndim <= 1} == _names(m, no_decay)
    assert load_config(None, []).optim.no_decay == []  # SiT's default: the official rule
    decay, no_decay = param_groups(m, exempt=m.no_weight_decay())
    assert {"pos_embed", "cls_token", "norm.weight", "blocks.0.attn.qkv.bias"} <= _names(m, no_decay)
    assert all(names.endswith("weight") for names in _names(m, decay))
    decay, no_decay = param_groups(m, ["pos_embed"])  # optim.no_decay: a name's last part
    assert "pos_embed" in _names(m, no_decay) and "cls_token" in _names(m, decay)
    opt = torch.optim.AdamW([decay, no_decay])
    set_hyperparams(opt, 0.1, 0.05)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert all(g["lr"] == 0.1 for g in opt.param_groups)


def test_fused_adamw_matches_the_per_parameter_loop():
    """The optimiser runs PyTorch's fused AdamW on CPU too; it must follow the plain per-tensor update."""
    cfg = SimpleNamespace(base_lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05, no_decay=[])
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


def _grads(seed=0):
    torch.manual_seed(seed)
    params = [torch.nn.Parameter(torch.zeros(s)) for s in ((4, 4), (8,), (3, 2, 2), (5,))]
    scales = (10.0, 0.1, 4.0, 1.0)
    for p, sc in zip(params, scales):
        p.grad = torch.randn_like(p) * sc
    return params


def test_per_parameter_clipping_is_the_official_rule():
    params = _grads()
    before = [p.grad.clone() for p in params]
    total = clip_gradients(params, 3.0, "per_param")
    assert torch.isclose(total, torch.sqrt(sum((g ** 2).sum() for g in before)))  # logged: the global norm
    for g0, p in zip(before, params):  # the official loop, one tensor at a time
        coef = 3.0 / (g0.norm() + 1e-6)
        want = g0 * coef if coef < 1 else g0
        assert torch.allclose(p.grad, want, atol=1e-6)
    norms = [p.grad.norm().item() for p in params]
    assert norms[0] == pytest.approx(3.0, rel=1e-5) and norms[1] == pytest.approx(before[1].norm().item())


def test_global_clipping_option_and_trainer_default():
    params, ref = _grads(), _grads()
    clip_gradients(params, 3.0, "global")
    torch.nn.utils.clip_grad_norm_(ref, 3.0)
    assert all(torch.allclose(a.grad, b.grad) for a, b in zip(params, ref))
    assert load_config(None, []).optim.clip_mode == "per_param"
