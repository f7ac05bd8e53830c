"""A second device for CPU-only machines: tensors that hold real values but refuse the CPU.

The first GPU restore crashed because a tensor made on the CPU met CUDA latents. No CPU
test saw it: on one device every mix is legal. `StandIn` tensors report the `meta`
device (which, unlike "cuda" on a CPU-only build, needs no driver and has a device guard)
while carrying a real CPU tensor inside, so the whole pipeline runs with real numbers:
value reads (`.item()`, `float()`), autograd, SDPA and diffusers' modules all work.
Every op checks its tensor arguments with CUDA's rule: a stand-in tensor may meet other
stand-in tensors and 0-dim CPU tensors (Python-scalar-like), nothing else. So any tensor
the engine leaves on the CPU fails the test with a message naming the op, exactly where
CUDA would fail; and `.numpy()` without `.cpu()` fails as it does on CUDA.

    with stand_in_device() as device:   # torch.device("meta")
        model = load_sd_model(folder, device="cpu")
        move_to_stand_in(model)          # weights now live on the stand-in device
        restore_faces(model, pairs, params)

Factory calls (`torch.zeros(..., device=meta)`, `x.new_zeros`, `torch.full_like`) and
`.to(meta)` / `.cpu()` are intercepted by a TorchFunctionMode; everything else reaches
`StandIn.__torch_dispatch__`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map

DEVICE = torch.device("meta")
CPU = torch.device("cpu")


class DeviceMismatch(RuntimeError):
    """A CPU tensor met a stand-in (device) tensor: CUDA would raise here."""


def _is_stand_in_device(device) -> bool:
    if device is None:
        return False
    if isinstance(device, int):
        return False
    return torch.device(device).type == DEVICE.type


_INDEX_OPS = {
    torch.ops.aten.index.Tensor,
    torch.ops.aten.index_put.default,
    torch.ops.aten.index_put_.default,
    torch.ops.aten._index_put_impl_.default,
}


def _host_index(index):
    """Lists in an index become CPU index tensors here, as CUDA does. (Left to C++, a
    list meeting a `meta` tensor becomes an index tensor with no data copied in.)"""
    if isinstance(index, list):
        return torch.tensor(index, device=CPU)
    if isinstance(index, tuple):
        return tuple(_host_index(i) for i in index)
    return index


class StandIn(torch.Tensor):
    """A tensor on the stand-in device, backed by a real CPU tensor (`.elem`)."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> StandIn:
        out = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.size(),
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            device=DEVICE,
            requires_grad=elem.requires_grad,
        )
        out.elem = elem
        return out

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"StandIn({self.elem!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        leaving = (
            func is torch.ops.aten._to_copy.default
            and kwargs.get("device") is not None
            and torch.device(kwargs["device"]).type == "cpu"
        )
        if _is_stand_in_device(kwargs.get("device")):
            kwargs["device"] = CPU

        def unwrap(t):
            if isinstance(t, StandIn):
                return t.elem
            if isinstance(t, torch.Tensor) and t.dim() > 0 and t.device.type == "cpu":
                if func in _INDEX_OPS and not t.is_floating_point():
                    return t  # CUDA accepts host index tensors (x[idx] with a CPU idx)
                raise DeviceMismatch(
                    "Expected all tensors to be on the same device, but found at least two "
                    f"devices, {DEVICE} (stand-in for cuda) and cpu: a CPU tensor of shape "
                    f"{tuple(t.shape)} ({t.dtype}) meets device tensors in {func}."
                )
            return t

        out = func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs))
        if leaving:
            return out
        return tree_map(lambda t: StandIn(t) if type(t) is torch.Tensor else t, out)


def _target_of_to(args: tuple, kwargs: dict) -> tuple[object, list, dict]:
    """Split Tensor.to(...)'s arguments into (device or None, other args, kwargs)."""
    rest = list(args[1:])
    kwargs = dict(kwargs)
    device = kwargs.pop("device", None)
    if rest and isinstance(rest[0], str | torch.device):
        device = rest.pop(0)
    elif rest and isinstance(rest[0], torch.Tensor):
        other = rest.pop(0)
        device = other.device
        kwargs.setdefault("dtype", other.dtype)
    if rest and (rest[0] is None or isinstance(rest[0], torch.dtype)):
        dtype = rest.pop(0)  # Module.to passes (device, dtype or None, non_blocking)
        if dtype is not None:
            kwargs["dtype"] = dtype
    for flag, value in zip(("non_blocking", "copy"), rest, strict=False):
        kwargs[flag] = value
    return device, [], kwargs


class _StandInMode(TorchFunctionMode):
    """Routes factories and device moves to and from the stand-in device."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if name == "numpy" and args and isinstance(args[0], StandIn):
            raise TypeError(
                "can't convert cuda:0 device type tensor to numpy (stand-in device). Use "
                "Tensor.cpu() to copy the tensor to host memory first."
            )
        if name in ("__getitem__", "__setitem__") and isinstance(args[0], StandIn):
            args = (args[0], _host_index(args[1]), *args[2:])
            return func(*args, **kwargs)
        if name == "new_tensor" and isinstance(args[0], StandIn):
            kwargs.setdefault("dtype", None)
            data = torch.tensor(args[1], device=CPU, dtype=kwargs["dtype"] or args[0].dtype)
            return StandIn(data)
        if name in ("to", "cpu") and args and isinstance(args[0], torch.Tensor):
            tensor = args[0]
            base = tensor.elem if isinstance(tensor, StandIn) else tensor
            if name == "cpu":
                return base
            device, rest, kw = _target_of_to(args, kwargs)
            moved = base.to(*rest, **kw)
            stays = isinstance(tensor, StandIn) if device is None else _is_stand_in_device(device)
            if not stays:
                return moved
            if moved is base and isinstance(tensor, StandIn):
                return tensor
            return StandIn(moved)
        if _is_stand_in_device(kwargs.get("device")):
            kwargs["device"] = CPU
            out = func(*args, **kwargs)
            return tree_map(lambda t: StandIn(t) if type(t) is torch.Tensor else t, out)
        return func(*args, **kwargs)


class _StandInFactories(TorchDispatchMode):
    """Factory ops that C++ composites call on the stand-in device (e.g. SDPA's math
    path allocating a mask with the query's options) never pass through Python's
    torch functions; catch them at dispatch and make them real (CPU-backed) too."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if any(isinstance(t, StandIn) for t in tree_leaves((args, kwargs))):
            return StandIn.__torch_dispatch__(func, types, args, kwargs)
        if _is_stand_in_device(kwargs.get("device")):
            kwargs["device"] = CPU
            out = func(*args, **kwargs)
            return tree_map(lambda t: StandIn(t) if type(t) is torch.Tensor else t, out)
        return func(*args, **kwargs)


@contextlib.contextmanager
def stand_in_device() -> Iterator[torch.device]:
    """Within this context the `meta` device is a real-valued stand-in for CUDA."""
    with _StandInMode(), _StandInFactories():
        yield DEVICE


def move_to_stand_in(model) -> None:
    """Put an SDModel's weights on the stand-in device and point model.device at it.

    Call inside stand_in_device(). CPU offload is not moved (it would move the weights
    back to the real CPU, which the stand-in cannot tell from a mistake)."""
    for name in ("unet", "vae", "text_encoder"):
        getattr(model, name).to(DEVICE)
    model.device = DEVICE


def on_stand_in(tensor: torch.Tensor) -> bool:
    return isinstance(tensor, StandIn)
