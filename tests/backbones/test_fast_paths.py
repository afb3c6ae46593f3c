"""Inference fast paths: the cache-blocked Block forward and the attention core dtype must give
the plain path's numbers, leave inputs untouched, and never change training. The blocked path
runs where it was measured to help (CPU) unless asked for; tests that compare it with the plain
path also check that it ran, so switching it off makes them fail."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import dinoreg_dense.backbones.block as block_module
from dinoreg_dense.backbones import RegisterViT
from dinoreg_dense.backbones.attention import Attention, Rope, set_attention_core_dtype
from dinoreg_dense.backbones.block import Block
from dinoreg_dense.backbones.rope import patch_coordinates, rope_cos_sin, rope_periods

DIM, HEADS = 32, 4


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk sizes that split a (3, 7, C) batch unevenly: attention groups of at most 2 images
    (1 + 2), FFN chunks of at most 5 of the 21 token rows (4 + 4 + 4 + 4 + 5)."""
    monkeypatch.setattr(block_module, "ATTN_GROUP_ROWS", 14)
    monkeypatch.setattr(block_module, "FFN_CHUNK_ROWS", 5)


@pytest.fixture
def blocked_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Shapes of the inputs ``Block._forward_blocked`` ran on (it still computes as usual)."""
    runs: list[tuple[int, ...]] = []
    original = Block._forward_blocked

    def spy(self: Block, x: torch.Tensor, rope: Rope | None) -> torch.Tensor:
        runs.append(tuple(x.shape))
        return original(self, x, rope)

    monkeypatch.setattr(Block, "_forward_blocked", spy)
    return runs


def refuse_blocked(monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    def refuse(self: Block, x: torch.Tensor, rope: Rope | None) -> torch.Tensor:
        raise AssertionError(why)

    monkeypatch.setattr(Block, "_forward_blocked", refuse)


def make_block(**kwargs) -> Block:
    kwargs.setdefault("layerscale_init", 1e-5)
    block = Block(DIM, HEADS, **kwargs).eval()
    with torch.no_grad():
        for name, param in block.named_parameters():
            if name.endswith("gamma"):
                param.uniform_(0.2, 1.0)  # not ~0: the residual branches must matter
            elif name.endswith("bias"):
                param.normal_(0.0, 0.1)
    return block


def plain(block: Block, x: torch.Tensor, rope: Rope | None = None) -> torch.Tensor:
    setting, block.blocked_inference = block.blocked_inference, False
    try:
        return block(x, rope)
    finally:
        block.blocked_inference = setting


def tokens(batch: int = 3, length: int = 7) -> torch.Tensor:
    return torch.randn(batch, length, DIM)


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(layerscale_init=None),
        dict(ffn_layer="swiglu"),
        dict(norm_layer="rmsnorm", qkv_bias=False, proj_bias=False, ffn_bias=False),
    ],
)
@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
@pytest.mark.usefixtures("small_chunks")
def test_blocked_forward_equals_plain(options, mode, blocked_runs):
    block, x = make_block(**options), tokens()
    with mode():
        expected = plain(block, x)
        assert blocked_runs == []
        got = block(x)
    assert blocked_runs == [(3, 7, DIM)]
    assert got.shape == x.shape and got.dtype == x.dtype
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.usefixtures("small_chunks")
def test_blocked_forward_with_rope_equals_plain(blocked_runs):
    """DINOv3's RoPE (1 prefix + 2 x 3 patches) and masked key bias reach every attention group."""
    block, x = make_block(key_bias=False), tokens()
    rope = rope_cos_sin(patch_coordinates((2, 3)), rope_periods(DIM // HEADS, 100.0))
    with torch.inference_mode():
        expected = plain(block, x, rope)
        got = block(x, rope)
        assert not torch.allclose(expected, plain(block, x), atol=1e-3)
    assert blocked_runs == [(3, 7, DIM)]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.usefixtures("small_chunks")
def test_blocked_forward_leaves_its_input_alone(blocked_runs):
    block, x = make_block(), tokens()
    before = x.clone()
    with torch.inference_mode():
        block(x)
    assert blocked_runs and torch.equal(x, before)


@pytest.mark.usefixtures("small_chunks")
def test_small_chunks_really_split_the_work(monkeypatch):
    """The fixture's sizes give 2 attention groups and 5 FFN chunks, so the loops are tested."""
    calls = []
    original = block_module._call

    def counting(module, params, x, *rest):
        calls.append((type(module).__name__, x.shape[0]))
        return original(module, params, x, *rest)

    monkeypatch.setattr(block_module, "_call", counting)
    with torch.inference_mode():
        make_block()(tokens())
    assert calls == [("Attention", 1), ("Attention", 2)] + [("Mlp", n) for n in (4, 4, 4, 4, 5)]


@pytest.mark.usefixtures("small_chunks")
def test_blocked_forward_under_bf16_autocast_matches_plain(blocked_runs):
    block, x = make_block(), tokens()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = plain(block, x)
        got = block(x)
    assert blocked_runs
    assert got.dtype == expected.dtype == torch.float32  # residual stream stays float32
    torch.testing.assert_close(got, expected, rtol=1e-2, atol=1e-2)


@pytest.mark.usefixtures("small_chunks")
def test_blocked_forward_on_a_bf16_model_keeps_bf16(blocked_runs):
    block, x = make_block().to(torch.bfloat16), tokens().to(torch.bfloat16)
    with torch.inference_mode():
        expected = plain(block, x)
        got = block(x)
    assert blocked_runs and got.dtype == torch.bfloat16
    torch.testing.assert_close(got, expected, rtol=2e-2, atol=2e-2)


def test_empty_batch_passes_through():
    with torch.inference_mode():
        assert make_block()(torch.zeros(0, 7, DIM)).shape == (0, 7, DIM)


def test_training_path_is_unchanged_and_gradients_flow(monkeypatch):
    block, x = make_block(), tokens().requires_grad_()
    refuse_blocked(monkeypatch, "the blocked path must not run while autograd records")
    block.train()
    got = block(x)
    reference = x + block.ls1(block.attn(block.norm1(x)))
    reference = reference + block.ls2(block.mlp(block.norm2(reference)))
    torch.testing.assert_close(got, reference, rtol=0, atol=0)
    got.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, param in block.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_stochastic_depth_in_training_mode_keeps_the_plain_path(monkeypatch):
    refuse_blocked(monkeypatch, "drop path must stay per-sample random")
    block = make_block(drop_path=0.5).train()
    with torch.no_grad():
        block(tokens())


@pytest.mark.parametrize("tracer", ["jit", "compiler"])
def test_tracing_and_compiling_keep_the_plain_path(monkeypatch, tracer):
    refuse_blocked(monkeypatch, "a traced graph must not bake in the batch size")
    module = torch.jit if tracer == "jit" else torch.compiler
    name = "is_tracing" if tracer == "jit" else "is_compiling"
    monkeypatch.setattr(module, name, lambda: True)
    with torch.inference_mode():
        make_block()(tokens())


def test_gradients_equal_whether_or_not_the_block_was_used_for_inference_first(blocked_runs):
    block, x = make_block(), tokens()
    with torch.inference_mode():
        block(x)
    assert blocked_runs
    first = torch.autograd.grad(block(x).sum(), list(block.parameters()))
    second = torch.autograd.grad(plain(block, x).sum(), list(block.parameters()))
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.usefixtures("small_chunks")
def test_tiny_vit_blocked_equals_plain(blocked_runs):
    model = RegisterViT(
        "vits14_reg4", embed_dim=DIM, depth=2, num_heads=HEADS, pos_embed_grid=4
    ).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.ls1.gamma.uniform_(0.2, 1.0)
            block.ls2.gamma.uniform_(0.2, 1.0)
    x = torch.randn(3, 3, 56, 42)
    with torch.inference_mode():
        got = model.forward_features(x)
        assert len(blocked_runs) == 2
        for block in model.blocks:
            block.blocked_inference = False
        expected = model.forward_features(x)
    assert len(blocked_runs) == 2
    for key in ("x_norm_clstoken", "x_norm_regtokens", "x_norm_patchtokens", "x_prenorm"):
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "setting, device, expected",
    [
        (None, "cpu", True),  # auto: CPU, where the blocked path was measured to help
        (None, "cuda", False),  # auto: every other device gets the plain whole-batch ops
        (None, "mps", False),
        (None, "meta", False),
        (True, "cuda", True),  # explicitly asked for
        (False, "cpu", False),
    ],
)
def test_blocked_path_applies_per_device_and_setting(setting, device, expected):
    block = make_block(blocked_inference=setting)
    assert block.blocked_inference is setting
    # Only the device type and the batch size are read: a stand-in tensor mocks a GPU here.
    x = SimpleNamespace(shape=(3, 7, DIM), device=torch.device(device))
    with torch.inference_mode():
        assert block._blocked_path_applies(x) is expected


@pytest.mark.parametrize("setting, runs", [(None, 0), (True, 1)])
def test_meta_tensors_take_the_plain_path_in_auto_mode(setting, runs, blocked_runs):
    block = make_block(blocked_inference=setting).to("meta")
    with torch.inference_mode():
        out = block(torch.empty(3, 7, DIM, device="meta"))
    assert out.shape == (3, 7, DIM) and out.device.type == "meta"
    assert len(blocked_runs) == runs


@pytest.mark.parametrize("setting", [None, True, False])
def test_register_vit_passes_the_setting_to_every_block(setting):
    model = RegisterViT(
        "vits14", depth=2, embed_dim=DIM, num_heads=HEADS, blocked_inference=setting
    )
    assert [block.blocked_inference for block in model.blocks] == [setting, setting]


def test_float32_attention_core_under_bf16_autocast():
    attn = Attention(DIM, HEADS).eval()
    x = torch.randn(2, 9, DIM)
    with torch.inference_mode():
        reference = attn(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = attn(x)
            attn.core_dtype = torch.float32
            mixed = attn(x)
    assert mixed.dtype == low.dtype == torch.bfloat16
    torch.testing.assert_close(mixed.float(), reference, rtol=2e-2, atol=2e-2)


def test_float32_core_is_a_no_op_in_float32_and_keeps_gradients():
    attn, x = Attention(DIM, HEADS), torch.randn(2, 9, DIM, requires_grad=True)
    expected = attn(x)
    attn.core_dtype = torch.float32
    got = attn(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    got.sum().backward()
    assert attn.qkv.weight.grad is not None and x.grad is not None


def test_set_attention_core_dtype_reaches_every_layer():
    model = nn.Sequential(make_block(), make_block())
    assert set_attention_core_dtype(model, torch.float32) == 2
    assert all(block.attn.core_dtype == torch.float32 for block in model)
    assert set_attention_core_dtype(model, None) == 2
    assert all(block.attn.core_dtype is None for block in model)
