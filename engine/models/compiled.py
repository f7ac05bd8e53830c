"""Opt-in `torch.compile` of the UNet's plain calls (issue 13: at one face a datacentre GPU
mostly waits on Python, ~15-20 ms of launch overhead per batch-2 UNet call against
~6-7 ms of GPU work; a compiled graph launches a few hundred fused kernels instead).

    compiled = compile_unet(model, mode="default")      # None, with a message, if it cannot
    eps = unet_forward(model, latents, timestep, context)  # what latents._unet calls

Nothing is compiled unless a caller asks (the CLI's --compile, the GPU bench, the tests):
compiling costs minutes on a GPU (the forward graph, then the forward + backward graph of
null-text) and is slower than eager for a single small restore on the CPU.

The graph is used only for the calls it was compiled for, checked cheaply per call (a
few attribute reads): the same UNet on the same device and dtype, the UNet not offloaded,
no forward hooks on it, and every attention layer still running a processor of the class
it ran at compile time. The entanglement stage and the attention recorders install their
own processors with `unet.set_attn_processor`; those calls run eager, so they never cause
a recompile (dynamo guards on the processors' classes) and never meet a stale graph.
When the stock processors come back (the same objects, or fresh AttnProcessor2_0 ones
from `SDModel.set_low_memory`) the same graph serves again without recompiling.

Choices (named parameters of `CompileOptions`):
- mode "default": inductor's fused kernels, launched from its generated Python wrapper.
  "reduce-overhead" adds CUDA graphs (no launch overhead at all) at a memory cost: each
  recorded batch shape keeps its buffers in a static pool between calls, so what eager
  frees after each null-text backward (its saved activations, ~0.9 GiB per sample at
  512 px in fp16: ~7 GiB for four faces) may stay held, and a second shape (micro-batched
  null-text, an OOM split) records its own; issue 13's 8 GB target for four faces would
  not hold. Each output is overwritten by the next replay (we clone it). It is offered
  for measurement (the CLI's --compile-mode, bench/gpu_acceptance.py --compile
  reduce-overhead) until a GPU run shows what it gains and holds.
- dynamic batch: a restore repeats a handful of batch shapes (2F for inversion and
  null-text, 2 x chunk for micro-batched null-text, fewer faces after an OOM split), so
  the batch dimension is marked dynamic from the first call: one graph per grad mode
  instead of one per shape (batch 1, which dynamo always specialises, adds one), well
  under dynamo's recompile limit (8 per compiled function); height and width stay static
  (one resolution per run; another resolution adds a graph).
- fullgraph=True: the SD 1.x UNet traces without graph breaks; a future diffusers that
  adds one fails the compile, and the UNet then runs eager with a message, never as a
  silently half-compiled model.
- grad: whether calls with autograd on (null-text's forward + backward w.r.t. the
  unconditional embeddings) use the graph. Automatic: on CUDA yes; on the CPU no,
  because inductor's CPU code generation in torch 2.13 returns a wrong gradient for the
  UNet (group_norm -> silu -> conv -> conv -> nearest upsample -> conv gives a gradient
  with relative error 1 on this project's machine; `python bench/inductor_cpu_grad.py`
  reproduces it, to be re-run after a torch upgrade). The forward matches eager on the
  CPU; on CUDA, forward and gradient are checked by tests/test_compile.py's gpu test and
  the GPU bench (not yet run).
"""

from __future__ import annotations

import logging
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.errors import ModelError

log = logging.getLogger(__name__)

MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class CompileOptions:
    """How the UNet is compiled (see the module docstring for why these defaults).

    mode: torch.compile's mode. grad: graph for calls with autograd on (None: CUDA only).
    dynamic_batch: batch dimension dynamic from the first call. backend: torch.compile's
    backend ("inductor"; the tests also use "aot_eager", which traces the same graphs and
    compiles in seconds)."""

    mode: str = "default"
    grad: bool | None = None
    dynamic_batch: bool = True
    backend: str = "inductor"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ModelError(f"Unknown compile mode {self.mode!r}: use one of {', '.join(MODES)}.")


class CompiledUNet:
    """The compiled UNet of one SDModel, and the per-call check of whether it applies.

    graph_calls / eager_calls count the calls each way; eager_reasons says why calls
    went eager (the bench prints it). failure holds the message of a failed compile,
    after which every call runs eager."""

    def __init__(self, model, options: CompileOptions, on_message: Callable[[str], None] | None):
        self.options = options
        self.unet = model.unet
        self.device = model.device
        self.dtype = model.dtype
        self.grad = options.grad if options.grad is not None else model.device.type == "cuda"
        self.graph_calls = 0
        self.eager_calls = 0
        self.eager_reasons: Counter[str] = Counter()
        self.failure: str | None = None
        self._on_message = on_message
        self._backward_compiled = False
        # CUDA graphs (reduce-overhead; max-autotune uses them too) overwrite their
        # outputs on the next replay: each call marks a new step and clones its output.
        self._cuda_graphs = options.mode != "default" and model.device.type == "cuda"
        # (attention module, processor class) pairs: what the graph was traced with.
        self._processors = [
            (module, type(module.processor))
            for module in self.unet.modules()
            if hasattr(module, "get_processor")
        ]
        unet = self.unet

        def forward(sample, timestep, context):
            return unet(sample, timestep, encoder_hidden_states=context, return_dict=False)[0]

        # Dynamo keeps compiled code, and counts recompiles against its limit, per code
        # object: a copy of forward's code per CompiledUNet keeps the graphs of another
        # model compiled in this process (a reloaded model, the tests) out of this one's.
        forward = types.FunctionType(
            forward.__code__.replace(), forward.__globals__, "unet_forward", None,
            forward.__closure__,
        )  # fmt: skip
        self._graph = torch.compile(
            forward, mode=options.mode, fullgraph=True, dynamic=None, backend=options.backend
        )

    def why_eager(self, model, context: torch.Tensor) -> str | None:
        """None when this call may use the graph, else the reason it may not."""
        if self.failure is not None:
            return "compile failed"
        if model.unet is not self.unet or model.device != self.device or model.dtype != self.dtype:
            return "model moved or changed"  # e.g. the OOM ladder's CPU rung
        if model.low_memory.offloads("unet"):
            return "UNet offloaded"
        unet = self.unet
        if unet._forward_hooks or unet._forward_pre_hooks:
            return "forward hooks"  # a graph would skip hooks added after it was traced
        for module, processor_class in self._processors:
            if type(module.processor) is not processor_class:
                return "custom attention processors"
        if not self.grad and torch.is_grad_enabled() and context.requires_grad:
            return "grad"
        return None

    def __call__(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor):
        if self.options.dynamic_batch:
            for tensor in (sample, timestep, context):
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
        if self._cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        if context.requires_grad and torch.is_grad_enabled() and not self._backward_compiled:
            if not self._compile_backward(sample, timestep, context):
                return None
        try:
            out = self._graph(sample, timestep, context)
        except torch._dynamo.exc.TorchDynamoException as error:
            if "out of memory" in str(error).lower():
                raise  # the out-of-memory ladder's business
            self._give_up(error)
            return None
        self.graph_calls += 1
        return out.clone() if self._cuda_graphs else out

    def _compile_backward(self, sample, timestep, context) -> bool:
        """AOT autograd compiles a graph's backward lazily, at the first backward pass,
        which null-text runs outside this class: a failure there would end the run. One
        throw-away forward + backward here compiles it where a failure falls back to
        eager. Returns whether it compiled."""
        probe = context.detach().requires_grad_(True)
        try:
            self._graph(sample, timestep, probe).float().sum().backward()
        except RuntimeError as error:  # dynamo's, inductor's and the backend's errors
            if "out of memory" in str(error).lower():
                raise
            self._give_up(error)
            return False
        self._backward_compiled = True
        return True

    def _give_up(self, error: BaseException) -> None:
        inner = getattr(error, "inner_exception", None) or error  # the backend's own error
        text = str(inner).strip().splitlines()
        first = f"{type(inner).__name__}: {text[0][:300]}" if text else type(inner).__name__
        self.failure = (
            f"torch.compile failed ({first}); the UNet runs without it (same results, "
            "without the compiled speed-up)."
        )
        log.warning("%s", self.failure)
        if self._on_message is not None:
            self._on_message(self.failure)


def compile_unavailable_reason(device: torch.device) -> str | None:
    """Why torch.compile cannot run here (None when it can): an unsupported Python, no
    Triton for CUDA, no C++ compiler for the CPU."""
    import torch._dynamo

    try:
        torch._dynamo.eval_frame.check_if_dynamo_supported()
    except Exception as error:  # noqa: BLE001 - torch raises plain RuntimeErrors here
        return f"torch.compile does not support this Python ({error})"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return (
                "torch.compile on an NVIDIA GPU needs Triton, which is not installed "
                "(pip install triton; on Windows: pip install triton-windows)"
            )
        return None
    if device.type == "cpu":
        from torch._inductor.cpp_builder import get_cpp_compiler

        try:
            get_cpp_compiler()
        except Exception:  # noqa: BLE001 - InvalidCxxCompiler, or a broken compiler install
            return (
                "torch.compile on the CPU needs a C++ compiler (g++ or clang; on Windows "
                "Visual Studio's Build Tools with cl.exe on the PATH), and none was found"
            )
        return None
    return f"torch.compile is not set up for {device.type} devices here"


def compile_unet(
    model,
    mode: str = "default",
    *,
    grad: bool | None = None,
    dynamic_batch: bool = True,
    backend: str = "inductor",
    on_message: Callable[[str], None] | None = None,
) -> CompiledUNet | None:
    """Compile `model`'s UNet for its plain calls (lazily: the first calls pay the compile).

    Returns the CompiledUNet (also set as model.compiled_unet), or None when torch.compile
    cannot run here or does not apply; then `on_message` (and the log) says why and the
    model keeps running eager. A bad mode raises ModelError."""
    options = CompileOptions(mode, grad, dynamic_batch, backend)
    reason = compile_unavailable_reason(model.device) if backend == "inductor" else None
    if reason is None and model.low_memory.offloads("unet"):
        reason = "the UNet moves between the CPU and the GPU with CPU offload"
    if reason is not None:
        message = f"--compile is ignored: {reason}. The UNet runs without it (same results)."
        log.warning("%s", message)
        if on_message is not None:
            on_message(message)
        model.compiled_unet = None
        return None
    model.compiled_unet = CompiledUNet(model, options, on_message)
    return model.compiled_unet


def uncompile(model) -> None:
    """Back to eager for every call (the compiled code stays in dynamo's cache)."""
    model.compiled_unet = None


def unet_forward(
    model, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor
) -> torch.Tensor:
    """The UNet's noise prediction: through the compiled graph when it applies to this
    call, else eager. The caller holds `model.use("unet")`."""
    compiled = getattr(model, "compiled_unet", None)
    if compiled is not None:
        reason = compiled.why_eager(model, context)
        if reason is None:
            out = compiled(sample, timestep, context)
            if out is not None:
                return out
            reason = "compile failed"
        compiled.eager_calls += 1
        compiled.eager_reasons[reason] += 1
    return model.unet(sample, timestep, encoder_hidden_states=context).sample
