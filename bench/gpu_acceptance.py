"""The one-shot GPU acceptance run's Python part (bench/gpu_bench.sh calls it).

  python bench/gpu_acceptance.py              # CUDA: full SD 1.4 architecture, random
                                              # weights, fp16, 512 px crops
  python bench/gpu_acceptance.py --dry-run    # CPU: tiny model, fp32, 32 px, few steps
  python bench/gpu_acceptance.py --dry-run --quick   # smaller still (tests/test_gpu_bench.py)

For 1 and 4 faces: one untimed warm-up restore that also runs the acceptance checks of
tests/test_gpu.py (`check_restore`: right shape, finite UNet / VAE outputs, non-black
crops, weights still on the model's device and dtype), then one timed restore; then the
baseline (null-text inversion at every one of 50 DDIM steps with this engine's attention
gating, no alignment, no hybrid solver; see bench/engine_cost.py) for 1 face. Then,
unless --compile off (the default of --dry-run), the same restores with the UNet compiled
(engine.models.compiled, --compile MODE): per face count one untimed warm-up whose time
(compiling included) is printed apart, then one timed restore, its crops compared with
the eager row's; and null-text's gradient (one forward + backward at its batch shape)
compiled against eager. Writes
results.md (markdown table) and results.json to --out, else $OUT, else bench/out/. The
table is rewritten after every row, so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from engine_cost import (  # noqa: E402
    EDITEDID_LABEL,
    baseline_label,
    baseline_params,
    make_pairs,
    markdown_table,
    random_sd14_model,
    run,
    tiny_model,
)

from engine.diffusion.restore import InversionCache, restore_faces  # noqa: E402
from engine.models.compiled import MODES, compile_unet  # noqa: E402
from engine.models.loading import SDModel  # noqa: E402
from engine.params import EditedIDParams  # noqa: E402

# Packages the sealed GPU machine lacks or the engine must not need.
FORBIDDEN = ("dlib", "PySide6", "insightface", "onnxruntime", "matplotlib")
TARGETS = (
    "issue 13: <= 1.0 s for one face, <= 0.6 s per face with 4 faces, <= 5 GB peak with one "
    "and <= 8 GB with 4, at 512 px fp16 on H100/H200 (warm)"
)


def forbidden_imported() -> list[str]:
    return sorted({name for name in FORBIDDEN if name in sys.modules})


# Imported so far: engine.models.loading, engine.params, engine.diffusion.restore
# and what they pull in.
ENGINE_IMPORTS_FORBIDDEN = forbidden_imported()


@dataclass(frozen=True)
class Setup:
    model: str  # "sd14-random" | "tiny"
    device: str
    dtype: str
    size: int
    faces: tuple[int, ...]
    nulltext_iters: int
    baseline_steps: int
    baseline_faces: int = 1


GPU = Setup("sd14-random", "cuda", "fp16", 512, (1, 4), 10, 50)
DRY = Setup("tiny", "cpu", "fp32", 32, (1, 4), 2, 10)
QUICK = Setup("tiny", "cpu", "fp32", 16, (1, 2), 1, 8)


def build_model(setup: Setup) -> SDModel:
    from engine.models.loading import choose_dtype

    if setup.model == "sd14-random":
        device = torch.device(setup.device)
        return random_sd14_model(device, choose_dtype(device, setup.dtype, allow_cpu_half=True))
    return tiny_model(setup.device, setup.dtype)


def _tensor_of(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list):
        return output[0]
    return output.sample  # diffusers output dataclasses


def check_restore(model: SDModel, faces: int, size: int, params: EditedIDParams) -> dict:
    """One restore of `faces` synthetic pairs at `size` px with the acceptance checks.

    Asserts: one crop per face of shape (size, size, 3) uint8, not black; every UNet
    output finite (forward hooks, no extra synchronisation per call; non-finite VAE
    decodes are counted, since the engine retries them in fp32); finite
    null-text losses and mixing weights; UNet, VAE and text encoder still on the model's
    device in the model's dtype after the run. Returns run()'s dict plus "checks".
    """
    device = model.device
    bad = {"unet": torch.zeros((), dtype=torch.int64, device=device), "vae": None, "calls": 0}
    bad["vae"] = torch.zeros_like(bad["unet"])

    def watch(key: str):
        def hook(_module, _inputs, output) -> None:
            out = _tensor_of(output).detach()
            bad[key] += (~torch.isfinite(out)).any().to(torch.int64)
            if key == "unet":
                bad["calls"] += 1

        return hook

    handles = [
        model.unet.register_forward_hook(watch("unet")),
        model.vae.decoder.register_forward_hook(watch("vae")),
    ]
    try:
        pairs = make_pairs(faces, size)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        result = restore_faces(model, pairs, params, cache=InversionCache())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
    finally:
        for handle in handles:
            handle.remove()

    assert len(result.faces) == faces, f"{len(result.faces)} results for {faces} faces"
    for index, face in enumerate(result.faces):
        crop = face.restored
        assert crop.shape == (size, size, 3), f"face {index}: crop shape {crop.shape}"
        assert crop.dtype == np.uint8, f"face {index}: crop dtype {crop.dtype}"
        assert crop.max() > 0, f"face {index}: the restored crop is black (NaN decode?)"
        losses = face.nulltext_losses + face.nulltext_initial_losses + face.mix_weights
        assert all(math.isfinite(v) for v in losses), f"face {index}: non-finite loss/weight"
    assert bad["calls"] > 0, "the UNet forward hook never ran"
    unet_bad, vae_bad = int(bad["unet"]), int(bad["vae"])
    assert unet_bad == 0, f"{unet_bad} of {bad['calls']} UNet calls gave non-finite output"
    # A non-finite fp16 VAE decode is retried in fp32 by the engine (latents._run_vae);
    # the crop checks above judge the result, the count says whether fp16 overflowed.
    result.vae_nonfinite_decodes = vae_bad
    for name in ("unet", "vae", "text_encoder"):
        module = getattr(model, name)
        places = {(p.device.type, p.dtype) for p in module.parameters()}
        assert places == {(device.type, model.dtype)}, f"{name} parameters are on {places}"

    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else float("nan")
    return {
        "faces": faces,
        "wall": wall,
        "peak": peak,
        "unet_calls_seen": bad["calls"],
        "stats": result.stats.as_dict(),
        "timings": dict(result.timings),
        "result": result,
    }


def compiled_label(mode: str) -> str:
    return f"{EDITEDID_LABEL}, compiled ({mode})"


def gradient_check(model: SDModel, size: int) -> float:
    """Relative difference |g_compiled - g_eager| / |g_eager| of null-text's gradient:
    one UNet forward + backward w.r.t. the unconditional embeddings at its batch shape
    (2 samples), through unet_forward with the graph, then eager."""
    from engine.models.compiled import unet_forward

    g = torch.Generator(device="cpu").manual_seed(0)
    sample = torch.randn(2, 4, size // 8, size // 8, generator=g).to(model.device, model.dtype)
    context = torch.randn(2, 77, model.unet.config.cross_attention_dim, generator=g)
    timestep = torch.full((2,), 500, dtype=torch.long, device=model.device)
    grads = []
    for compiled in (model.compiled_unet, None):
        saved, model.compiled_unet = model.compiled_unet, compiled
        try:
            leaf = context.to(model.device, model.dtype).requires_grad_(True)
            with torch.enable_grad():
                out = unet_forward(model, sample, timestep, leaf).float()
                (out**2).mean().backward()
            grads.append(leaf.grad.float())
        finally:
            model.compiled_unet = saved
    return float((grads[0] - grads[1]).norm() / grads[1].norm().clamp_min(1e-30))


def compiled_rows(model, setup, params, mode: str, eager_rows: dict, say) -> list:
    """The compiled rows (see the module docstring); say(text) records a check line."""
    started = time.perf_counter()
    compiled = compile_unet(model, mode, on_message=say)
    if compiled is None:
        return []
    rows = []
    for faces in setup.faces:
        pairs = make_pairs(faces, setup.size)
        before = compiled.graph_calls
        warm = time.perf_counter()
        run(model, params, pairs)  # untimed: compiles the graphs this face count needs
        warm_s = time.perf_counter() - warm
        row = run(model, params, pairs)
        rows.append((compiled_label(mode), row))
        eager = eager_rows.get(faces)
        diff = (
            max(
                int(np.abs(a.restored.astype(int) - b.restored.astype(int)).max())
                for a, b in zip(eager["result"].faces, row["result"].faces, strict=True)
            )
            if eager is not None
            else None
        )
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(compiled.eager_reasons.items()))
        say(
            f"compiled ({mode}), {faces} face(s): compile + warm-up {warm_s:.1f} s; "
            f"{compiled.graph_calls - before} UNet calls through the graph in the two runs, "
            f"eager so far: {reasons or 'none'}; crops vs eager: max |diff| "
            f"{diff if diff is not None else 'n/a'} (of 255)"
            + (f"; FAILED: {compiled.failure}" if compiled.failure else "")
        )
        if faces == setup.faces[0]:
            say(
                f"compiled ({mode}): null-text gradient vs eager, relative difference "
                f"{gradient_check(model, setup.size):.2e} (graph for grad calls: "
                f"{'yes' if compiled.grad else 'no, eager on this device'})"
            )
    say(f"compiled ({mode}): whole compiled part {time.perf_counter() - started:.0f} s")
    return rows


def environment(model: SDModel | None = None) -> dict:
    import diffusers
    import transformers

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "diffusers": f"{diffusers.__version__} ({Path(diffusers.__file__).parent.parent})",
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU",
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        _free, total = torch.cuda.mem_get_info()
        info["gpu_memory_gb"] = round(total / 1e9, 1)
    if model is not None:
        info["model"] = model.model_id
        info["dtype"] = str(model.dtype).replace("torch.", "")
    return info


def _row_json(label: str, r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "result"} | {"method": label}


def write_results(out: Path, header: list[str], rows: list[tuple[str, dict]], notes: list[str]):
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(header) + "\n\n" + markdown_table(rows) + "\n\n" + "\n".join(notes) + "\n"
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(
        json.dumps({"rows": [_row_json(n, r) for n, r in rows]}, indent=2, default=str)
    )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model (no GPU)")
    parser.add_argument("--quick", action="store_true", help="with --dry-run: smallest sizes")
    parser.add_argument("--out", default=None, help="output folder (default $OUT or bench/out)")
    parser.add_argument("--dtype", default=None, help="override the setup's dtype")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--baseline-steps", type=int, default=None)
    parser.add_argument("--gpu-test", default="not run", help="outcome of tests/test_gpu.py")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (dry run default: 1)"
    )
    parser.add_argument(
        "--compile",
        choices=(*MODES, "off"),
        default=None,
        help="compiled rows with this torch.compile mode (default: 'default' on the GPU, "
        "'off' in a dry run)",
    )
    args = parser.parse_args(argv)

    setup = (QUICK if args.quick else DRY) if args.dry_run else GPU
    if args.dtype:
        setup = replace(setup, dtype=args.dtype)
    if args.baseline_steps:
        setup = replace(setup, baseline_steps=args.baseline_steps)
    out = Path(args.out or os.environ.get("OUT") or BENCH / "out")
    if setup.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: run with --dry-run on a machine without a GPU.")
        return 2

    if args.threads or setup.device == "cpu":
        # One thread on the CPU: on a small machine shared with other jobs, torch's
        # OpenMP threads oversubscribe and a tiny restore swings from 0.5 s to 40 s.
        torch.set_num_threads(args.threads or 1)

    start = time.perf_counter()
    model = build_model(setup)
    build_s = time.perf_counter() - start
    env = environment(model)
    print(f"model built in {build_s:.1f} s: {env}", flush=True)

    editedid = EditedIDParams(nulltext_iters=setup.nulltext_iters, nulltext_early_stop=0.0)
    header = [
        f"## GPU acceptance run ({'dry run, CPU' if args.dry_run else 'GPU'}), "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"- machine: {env['device']}, python {env['python']}, torch {env['torch']} "
        f"(CUDA {env['cuda']}), diffusers {env['diffusers']}, transformers {env['transformers']}, "
        f"{env['threads']} CPU thread(s)",
        f"- model: {setup.model} (random weights), {setup.dtype}, {setup.size}x{setup.size} "
        f"crops, built in {build_s:.1f} s",
        f"- EditedID: {editedid.steps} steps, null-text {setup.nulltext_iters} iterations per "
        "step with early stop off (worst case); each face count: one untimed warm-up restore "
        "(with the acceptance checks), then one timed restore",
        f"- baseline: {baseline_label(setup.baseline_steps)}, {setup.baseline_faces} face, "
        "same null-text iterations, not warmed up separately (same kernels as EditedID's)",
        f"- tests/test_gpu.py (-m gpu): {args.gpu_test}",
        f"- engine import chain imports of {', '.join(FORBIDDEN)}: "
        f"{', '.join(ENGINE_IMPORTS_FORBIDDEN) or 'none'}",
    ]
    notes = [
        "Stage seconds are the engine's own timers (RestoreResult.timings, totals over the "
        "batch; the engine synchronises CUDA at stage boundaries; decode is timed apart and "
        "shown with entangle); total s "
        "is synchronised wall time. UNet fwd/bwd are samples per face (RestoreResult.stats); "
        "calls are UNet calls of the whole batch. Peak GB: torch.cuda.max_memory_allocated "
        "(reset before each run; includes the weights) on a GPU, process max RSS on the CPU.",
        f"Targets (not asserted): {TARGETS}.",
    ]
    rows: list[tuple[str, dict]] = []
    checks: list[str] = []
    failed = False
    for faces in setup.faces:
        try:
            warm = check_restore(model, faces, setup.size, editedid)
            checks.append(
                f"{faces} face(s): checks passed (warm-up {warm['wall']:.2f} s, "
                f"{warm['unet_calls_seen']} UNet calls"
                + (f", peak {warm['peak']:.2f} GB)" if math.isfinite(warm["peak"]) else ")")
            )
        except AssertionError as error:
            failed = True
            checks.append(f"{faces} face(s): CHECK FAILED: {error}")
        print(checks[-1], flush=True)
        rows.append((EDITEDID_LABEL, run(model, editedid, make_pairs(faces, setup.size))))
        text = write_results(out, header, rows, notes + ["", "Acceptance checks:"] + checks)
        print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    if not args.skip_baseline:
        params = baseline_params(setup.baseline_steps, setup.nulltext_iters)
        pairs = make_pairs(setup.baseline_faces, setup.size)
        rows.append((baseline_label(setup.baseline_steps), run(model, params, pairs)))
        one = next(r for n, r in rows if n == EDITEDID_LABEL and r["faces"] == 1)
        base = rows[-1][1]
        if base["faces"] == 1:
            notes.append(
                f"Baseline / EditedID wall time per face (1 face): "
                f"{base['per_face'] / one['per_face']:.1f}x; UNet forward samples: "
                f"{base['fwd'] / one['fwd']:.1f}x."
            )
    mode = args.compile or ("off" if args.dry_run else "default")
    if mode != "off":
        eager_rows = {r["faces"]: r for n, r in rows if n == EDITEDID_LABEL}

        def say(text: str) -> None:
            checks.append(text)
            print(text, flush=True)

        header.append(
            f"- compiled rows: torch.compile mode {mode!r} (engine.models.compiled: batch "
            "dimension dynamic, fullgraph; entanglement's calls run eager), warm-up with "
            "the compile printed apart below"
        )
        for row in compiled_rows(model, setup, editedid, mode, eager_rows, say):
            # next to the eager rows, before the baseline
            at = 1 + max(i for i, (n, _) in enumerate(rows) if n in (EDITEDID_LABEL, row[0]))
            rows.insert(at, row)
            write_results(out, header, rows, notes + ["", "Acceptance checks:"] + checks)
            print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    late = [m for m in forbidden_imported() if m not in ENGINE_IMPORTS_FORBIDDEN]
    if late:
        notes.append(
            f"Imported later in the run (not by the engine import chain): {', '.join(late)}"
            + (
                " (diffusers' pipeline import in engine.models.tiny)"
                if setup.model == "tiny"
                else ""
            )
        )
    notes.append(f"Whole Python run: {time.perf_counter() - start:.0f} s.")
    text = write_results(out, header, rows, notes + ["", "Acceptance checks:"] + checks)
    print("\n" + text)
    print(f"written: {out / 'results.md'}, {out / 'results.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
