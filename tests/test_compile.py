"""engine.models.compiled: the opt-in torch.compile of the UNet's plain calls.

The dispatch tests use torch.compile's "eager" backend (the same dynamo graph and guards,
run by torch's ordinary kernels) and "aot_eager" where the forward + backward split of AOT
autograd matters; both compile in seconds. Inductor itself (~40-90 s per graph on a
2-core CPU) runs in the `slow` tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.diffusion.latents import UNetStats, predict_noise
from engine.diffusion.restore import InversionCache, restore_faces
from engine.models.compiled import compile_unet, unet_forward
from engine.models.loading import LowMemory, load_sd_model
from engine.params import EditedIDParams
from tests.helpers import face_pair

FAST = "eager"  # dynamo only
AOT = "aot_eager"  # dynamo + AOT autograd


@pytest.fixture
def model(tiny_sd_dir):
    """A fresh model; what it compiles is its own (compiled.py: one code object per
    CompiledUNet), so it does not disturb the shared one."""
    return load_sd_model(tiny_sd_dir, device="cpu")


@pytest.fixture(scope="module")
def shared(tiny_sd_dir):
    """One model compiled once (FAST) and warmed with a batch-2 call, for the tests of the
    per-call check; each test starts from zeroed counters and leaves the model as it was."""
    torch._dynamo.reset()
    model = load_sd_model(tiny_sd_dir, device="cpu")
    compile_unet(model, backend=FAST)
    with torch.no_grad():
        unet_forward(model, *inputs(2))
    yield model
    torch._dynamo.reset()


@pytest.fixture
def compiled_model(shared):
    compiled = shared.compiled_unet
    compiled.graph_calls = compiled.eager_calls = 0
    compiled.eager_reasons.clear()
    return shared


def inputs(batch: int, grad: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, 4, 16, 16, generator=g)
    context = torch.randn(batch, 77, 32, generator=g).requires_grad_(grad)
    return sample, torch.full((batch,), 500, dtype=torch.long), context


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def eager(model, sample, timestep, context):
    return model.unet(sample, timestep, encoder_hidden_states=context).sample


class RecordingProcessor:
    """A custom attention processor (as entanglement installs) that notes each call."""

    def __init__(self):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.inner = AttnProcessor2_0()
        self.calls = 0

    def __call__(self, attn, hidden_states, *args, **kwargs):
        self.calls += 1
        return self.inner(attn, hidden_states, *args, **kwargs)


def test_forward_goes_through_the_graph_and_equals_eager(compiled_model):
    model, compiled = compiled_model, compiled_model.compiled_unet
    args = inputs(2, seed=1)
    with torch.no_grad():
        out = unet_forward(model, *args)
        ref = eager(model, *args)
    assert compiled.graph_calls == 1 and compiled.eager_calls == 0
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", [FAST, pytest.param(AOT, marks=pytest.mark.slow)])
def test_forward_and_backward_wrt_the_embeddings_equal_eager(model, backend):
    """Null-text's use: the gradient flows to encoder_hidden_states through the graph."""
    compiled = compile_unet(model, backend=backend, grad=True)
    grads = []
    for forward in (unet_forward, eager):
        sample, timestep, context = inputs(2, grad=True)
        (forward(model, sample, timestep, context) ** 2).sum().backward()
        grads.append(context.grad)
    assert compiled.graph_calls == 1
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_on_the_cpu_calls_with_grad_run_eager_by_default(compiled_model):
    model, compiled = compiled_model, compiled_model.compiled_unet
    sample, timestep, context = inputs(2, grad=True)
    unet_forward(model, sample, timestep, context).sum().backward()
    assert context.grad is not None
    assert (compiled.graph_calls, compiled.eager_reasons["grad"]) == (0, 1)


def test_custom_processors_run_eager_without_a_recompile(compiled_model):
    model, compiled = compiled_model, compiled_model.compiled_unet
    compiled_graphs = graphs_compiled()
    args = inputs(2)
    with torch.no_grad():
        unet_forward(model, *args)
        stock = dict(model.unet.attn_processors)
        recorder = RecordingProcessor()
        name = next(n for n in stock if n.endswith("attn2.processor"))
        model.unet.set_attn_processor(dict(stock, **{name: recorder}))
        custom = unet_forward(model, *args)
        assert recorder.calls == 1
        assert compiled.graph_calls == 1 and compiled.eager_reasons == {
            "custom attention processors": 1
        }
        torch.testing.assert_close(custom, eager(model, *args))
        # the stock processors back: the same graph serves, as it does for fresh
        # AttnProcessor2_0 objects (what set_low_memory installs)
        model.unet.set_attn_processor(dict(stock))
        unet_forward(model, *args)
        model.set_low_memory(LowMemory(attention_slicing=True))
        model.set_low_memory(LowMemory())
        unet_forward(model, *args)
    assert recorder.calls == 2  # the dispatched call and the eager reference, no more
    assert compiled.graph_calls == 3 and compiled.eager_calls == 1
    assert graphs_compiled() == compiled_graphs


def test_batch_shapes_share_one_graph(compiled_model):
    """The shared model's graph was traced at batch 2; other batches need no new one
    (except batch 1, which dynamo always specialises; a restore's graph calls are 2F)."""
    model, compiled = compiled_model, compiled_model.compiled_unet
    before = graphs_compiled()  # dynamo's counters add up over the session
    with torch.no_grad():
        for batch in (4, 6, 8):
            out = unet_forward(model, *inputs(batch, seed=batch))
            torch.testing.assert_close(out, eager(model, *inputs(batch, seed=batch)))
    assert compiled.graph_calls == 3 and graphs_compiled() == before


def test_hooks_offload_and_a_moved_model_run_eager(compiled_model):
    model, compiled = compiled_model, compiled_model.compiled_unet
    args = inputs(2)
    seen = []
    with torch.no_grad():
        handle = model.unet.register_forward_hook(lambda *_: seen.append(1))
        unet_forward(model, *args)
        handle.remove()
        model.low_memory = LowMemory(cpu_offload=True)
        unet_forward(model, *args)
        model.low_memory = LowMemory()
        model.dtype = torch.bfloat16  # what the OOM ladder's CPU rung changes (fp32 there)
        try:
            unet_forward(model, *args)
        finally:
            model.dtype = torch.float32
    assert seen == [1]
    assert compiled.graph_calls == 0
    assert compiled.eager_reasons == {
        "forward hooks": 1,
        "UNet offloaded": 1,
        "model moved or changed": 1,
    }


def test_a_failing_compile_runs_eager_with_a_message(model):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no compiler here")

    messages = []
    compiled = compile_unet(model, backend=broken_backend, on_message=messages.append)
    args = inputs(2)
    with torch.no_grad():
        first = unet_forward(model, *args)
        unet_forward(model, *args)
        ref = eager(model, *args)
    torch.testing.assert_close(first, ref)
    assert len(messages) == 1 and "no compiler here" in messages[0]
    assert "runs without it" in messages[0]
    assert compiled.graph_calls == 0 and compiled.eager_reasons["compile failed"] == 2


def test_without_a_cpp_compiler_compile_is_refused_with_a_message(model, monkeypatch):
    from torch._inductor import cpp_builder, exc

    def no_compiler():  # what inductor's compiler search raises on such a machine
        raise exc.InvalidCxxCompiler

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    messages = []
    assert compile_unet(model, on_message=messages.append) is None
    assert model.compiled_unet is None
    assert "C++ compiler" in messages[0] and "ignored" in messages[0]


def test_cpu_offload_refuses_compile(tiny_sd_dir):
    model = load_sd_model(tiny_sd_dir, device="cpu", low_memory=LowMemory(cpu_offload=True))
    messages = []
    assert compile_unet(model, backend=FAST, on_message=messages.append) is None
    assert "CPU offload" in messages[0]


def test_restore_faces_compiled_equals_eager(compiled_model):
    model, compiled = compiled_model, compiled_model.compiled_unet
    params = EditedIDParams(nulltext_iters=2, nulltext_early_stop=0.0)
    pairs = [face_pair(), face_pair("astronaut", "grace_hopper")]
    out = restore_faces(model, pairs, params, cache=InversionCache())
    graph_calls, reasons = compiled.graph_calls, dict(compiled.eager_reasons)
    model.compiled_unet = None
    try:
        ref = restore_faces(model, pairs, params, cache=InversionCache())
    finally:
        model.compiled_unet = compiled
    # inversion and null-text's plain forwards through the graph; null-text's forwards
    # with grad (CPU default) and entanglement (its own processors) eager
    assert graph_calls > 0 and reasons.keys() == {"grad", "custom attention processors"}
    for a, b in zip(ref.faces, out.faces, strict=True):
        assert np.abs(a.restored.astype(int) - b.restored.astype(int)).max() <= 1
        np.testing.assert_allclose(a.nulltext_losses, b.nulltext_losses, rtol=1e-4, atol=1e-7)


def test_cli_compile_option_compiles_the_loaded_model(tiny_sd_dir):
    import argparse

    from engine.cli.options import add_model_options, model_spec_from_args

    parser = argparse.ArgumentParser()
    add_model_options(parser)
    args = parser.parse_args(["--model", str(tiny_sd_dir), "--device", "cpu", "--compile"])
    assert model_spec_from_args(args).load().compiled_unet is not None
    args = parser.parse_args(["--model", str(tiny_sd_dir), "--device", "cpu"])
    assert model_spec_from_args(args).load().compiled_unet is None


# --- inductor itself --------------------------------------------------------------------
@pytest.mark.slow
def test_inductor_restore_equals_eager(model):
    """Inductor on the CPU (its default there: forward graph, null-text's grad eager)."""
    params = EditedIDParams(nulltext_iters=2, nulltext_early_stop=0.0)
    pairs = [face_pair(), face_pair("astronaut", "grace_hopper")]
    ref = restore_faces(model, pairs, params, cache=InversionCache())
    compiled = compile_unet(model)
    out = restore_faces(model, pairs, params, cache=InversionCache())
    assert compiled.graph_calls > 0 and compiled.failure is None
    for a, b in zip(ref.faces, out.faces, strict=True):
        assert np.abs(a.restored.astype(int) - b.restored.astype(int)).max() <= 2
        np.testing.assert_allclose(a.nulltext_losses, b.nulltext_losses, rtol=1e-3, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inductor_forward_and_gradient_equal_eager(tiny_sd_dir):
    """Where CUDA is: the compiled graph (inductor, grad on) against eager in fp32."""
    torch._dynamo.reset()
    model = load_sd_model(tiny_sd_dir, device="cuda", dtype="fp32")
    compiled = compile_unet(model, grad=True)
    results = []
    for forward in (unet_forward, eager):
        sample, timestep, context = (t.cuda() for t in inputs(2))
        context.requires_grad_(True)
        out = forward(model, sample, timestep, context)
        (out**2).sum().backward()
        results.append((out.detach(), context.grad))
    assert compiled.graph_calls == 1 and compiled.failure is None
    for got, want in zip(results[0], results[1], strict=True):
        # relative to the whole tensor: TF32 convolutions differ in the last bits between
        # kernels; a wrong gradient (the CPU bug above) is off by tens of percent
        assert float((got - want).norm() / want.norm()) < 1e-2


def test_predict_noise_counts_the_same_compiled_or_not(compiled_model):
    model = compiled_model
    stats = UNetStats()
    sample, _, context = inputs(2)
    with torch.no_grad():
        predict_noise(model, sample, 500, context, context, 7.5, stats)
    assert (stats.forward_calls, stats.forward_samples) == (1, 4)
    assert model.compiled_unet.graph_calls == 1


@pytest.mark.slow
def test_gpu_bench_dry_run_has_the_compiled_rows(tmp_path):
    """bench/gpu_acceptance.py's compiled rows on the CPU (inductor, tiny model)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    command = [sys.executable, "bench/gpu_acceptance.py", "--dry-run", "--quick"]
    proc = subprocess.run(
        [*command, "--compile", "default", "--skip-baseline", "--out", str(out)],
        cwd=root,
        env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (out / "results.md").read_text()
    methods = [line.split("|")[1].strip() for line in text.splitlines() if "| EditedID" in line]
    compiled = "EditedID (6 steps, hybrid), compiled (default)"
    assert methods == ["EditedID (6 steps, hybrid)"] * 2 + [compiled] * 2
    assert "compiled (default), 1 face(s): compile + warm-up" in text
    assert "crops vs eager: max |diff| 0 (of 255)" in text or "max |diff| 1 (of" in text
    assert "null-text gradient vs eager" in text and "FAILED" not in text
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows][2:] == [compiled] * 2


def test_a_failing_backward_compile_runs_eager_with_a_message(model):
    """AOT autograd compiles the backward lazily; the failure must not reach null-text's
    .backward() (outside the dispatch) but fall back to eager at the forward. (The graph
    is a small stand-in, compiled with a backend whose backward compiler fails: tracing
    the UNet's joint graph would take seconds and test nothing more.)"""
    from torch._dynamo.backends.common import aot_autograd

    def forward_compiler(graph, example_inputs):
        return graph.forward

    def broken_backward_compiler(graph, example_inputs):
        raise RuntimeError("no backward here")

    backend = aot_autograd(fw_compiler=forward_compiler, bw_compiler=broken_backward_compiler)
    messages = []
    compiled = compile_unet(model, backend=FAST, grad=True, on_message=messages.append)
    stand_in = torch.compile(lambda sample, timestep, context: context.sin(), backend=backend)
    compiled._graph = stand_in
    sample, timestep, context = inputs(2, grad=True)
    (unet_forward(model, sample, timestep, context) ** 2).sum().backward()
    reference = inputs(2, grad=True)[2]
    (eager(model, sample, timestep, reference) ** 2).sum().backward()
    torch.testing.assert_close(context.grad, reference.grad)
    assert len(messages) == 1 and "no backward here" in messages[0]
    assert compiled.graph_calls == 0 and compiled.eager_reasons == {"compile failed": 1}
