"""What every editedid-cli command shares: exit codes, the EditedID parameters as options,
the restorer choice (--mode), the model options and the ModelSpec they make, and engine
errors as exit codes. The commands (commands, batch, eval) import this module and never
each other's, except that `commands.build_parser` gathers them all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from engine.errors import Cancelled, EditedIDError, InputError, ModelError
from engine.io.names import SafeStream
from engine.models.places import DEFAULT_SD_MODEL
from engine.models.spec import COMPILE_MODES, ModelSpec, note_to_stderr
from engine.params import PARAM_HELP, EditedIDParams, InvalidParams, params_in_document
from engine.restorers import RESTORERS, restorer_class

if typing.TYPE_CHECKING:
    from engine.runtime import EngineRestorer

EXIT_OK = 0
EXIT_FAILED = 1  # an engine error of no more specific kind; or a batch where nothing succeeded
EXIT_INPUT = 2  # bad arguments, files or folders
EXIT_MODEL = 3  # the model cannot be found or loaded
EXIT_CANCELLED = 130  # Ctrl+C or a cancel, as a shell reports SIGINT


# --- parameters as options ------------------------------------------------------------
def add_param_options(parser: argparse.ArgumentParser) -> None:
    """One option per EditedIDParams field, defaults from the dataclass (the paper's)."""
    group = parser.add_argument_group("EditedID parameters (defaults are the paper's)")
    defaults = EditedIDParams()
    hints = typing.get_type_hints(EditedIDParams)
    for f in dataclasses.fields(EditedIDParams):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f"{PARAM_HELP.get(f.name, '')} (default: {_show(default)})"
        options: dict[str, typing.Any] = {"dest": f.name, "default": None, "help": help_text}
        if f.name == "element_words":
            group.add_argument("--element", "--element-words", nargs="+", action="extend",
                               metavar="WORD", **options)  # fmt: skip
        elif hints[f.name] is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        elif f.name in ("dpm_range", "overlap"):
            kind = int if f.name == "dpm_range" else float
            group.add_argument(flag, nargs=2, type=kind, metavar=("A", "B"), **options)
        elif f.name in ("gate_blocks", "face_words"):
            group.add_argument(flag, nargs="+", **options)
        elif f.name == "max_batch_faces":
            group.add_argument(flag, type=int, **options)
        else:
            group.add_argument(flag, type=type(default), **options)
    parser.add_argument(
        "--params-json",
        type=Path,
        help="Read parameters from a JSON file (a sidecar works); options override it.",
    )
    add_preset_option(group)


def add_preset_option(group) -> None:
    """--preset fast|balanced|best, each with what it sets and costs (engine_cost's
    counts x the recorded per-sample figures of the full SD 1.4 model)."""
    from engine.diffusion.cost import describe_presets
    from engine.params import PRESETS

    lines = "; ".join(f"{name}: {text}" for name, text in describe_presets().items())
    group.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help=f"Quality/speed preset (steps, null-text iterations; options given override "
        f"it). {lines}.",
    )


def _show(value) -> str:
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


MAX_PARAMS_JSON_BYTES = 16 * 2**20  # a sidecar is a few KB; anything this big is not one


def read_params_json(path: str | Path) -> dict[str, typing.Any] | None:
    """The parameters mapping in a --params-json file (a parameters object or a sidecar;
    None for a classic-mode sidecar, which records none), not yet validated. The file is
    only read. Every problem is an InputError naming the file (and the field)."""
    path = Path(path)
    try:
        if not path.exists():
            raise InputError(f"{path}: the parameters file does not exist.")
        if not path.is_file():
            raise InputError(f"{path}: not a regular file; --params-json reads a JSON file.")
        with path.open("rb") as handle:
            raw = handle.read(MAX_PARAMS_JSON_BYTES + 1)
    except OSError as error:
        raise InputError(f"{path}: cannot read parameters ({error.strerror or error}).") from None
    if len(raw) > MAX_PARAMS_JSON_BYTES:
        raise InputError(f"{path}: too large for a parameters file or a sidecar.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; save the parameters file as UTF-8.") from None
    try:
        data = json.loads(text, parse_int=_json_int)
    except RecursionError:
        raise InputError(f"{path}: not a parameters file (JSON nested too deeply).") from None
    except ValueError as error:
        raise InputError(f"{path}: not valid JSON ({error}).") from None
    return params_in_document(data, source=path)


def _json_int(digits: str) -> int | float:
    """An int, or inf past Python's 4300-digit limit (then refused by the field's bounds)."""
    return int(digits) if len(digits) <= 4000 else float(digits)


def params_from_args(args: argparse.Namespace) -> EditedIDParams:
    """--params-json (a parameters file or a sidecar), then --preset, then every option
    given on top, checked together once; a bad value is named with its file or option."""
    given: dict[str, typing.Any] = {}
    origins: dict[str, object] = {}
    path = getattr(args, "params_json", None)
    if path:
        from_file = read_params_json(path)
        if from_file is None:
            print(
                f"note: {path} is a classic-mode sidecar and records no parameters; "
                "using the defaults and the options given.",
                file=sys.stderr,
            )
        else:
            given.update(from_file)
            origins.update(dict.fromkeys(from_file, path))
    preset = getattr(args, "preset", None)
    if preset:
        from engine.params import PRESETS

        given.update(PRESETS[preset])
        origins.update(dict.fromkeys(PRESETS[preset], "--preset"))
    for f in dataclasses.fields(EditedIDParams):
        value = getattr(args, f.name, None)
        if value is not None:
            given[f.name] = value
            origins[f.name] = _flag(f.name)
    try:
        return EditedIDParams.from_dict(given)
    except InvalidParams as error:
        raise error.naming(origins) from None


def _flag(name: str) -> str:
    return "--element" if name == "element_words" else "--" + name.replace("_", "-")


# --- the result's metadata ------------------------------------------------------------
def add_location_options(parser: argparse.ArgumentParser, *, carries_metadata: bool = True) -> None:
    """--strip-location (the default) / --keep-location: the GPS position of the edited
    photo's EXIF in the result or not (engine.io.export says why stripping is the default).
    """
    group = parser.add_mutually_exclusive_group()
    note = "" if carries_metadata else " Face crops are written without any metadata."
    group.add_argument(
        "--strip-location",
        dest="strip_location",
        action="store_true",
        default=True,
        help="Remove the GPS position from the result's EXIF (the default)." + note,
    )
    group.add_argument(
        "--keep-location",
        dest="strip_location",
        action="store_false",
        help="Keep the edited photo's GPS position in the result's EXIF." + note,
    )


# --- the model ------------------------------------------------------------------------
def _model_options(default_model: str) -> list[tuple[str, dict]]:
    return [
        ("--model", {
            "default": None,
            "help": "SD 1.x diffusers folder, single .safetensors file or hub id "
            f"(default {default_model}, looked up in the models folder).",
        }),
        ("--device", {"default": None, "help": "cuda, cuda:N or cpu (default: best available)."}),
        ("--dtype", {"default": None, "help": "fp16, bf16 or fp32 (default: fp16 on CUDA)."}),
        ("--low-vram", {
            "action": "store_true",
            "help": "VAE tiling; VAE and text encoder off the GPU while the UNet works; "
            "null-text one face per pass; the entanglement's recorded attention in RAM.",
        }),
        ("--cpu-offload", {"action": "store_true", "help": "Keep idle model parts in RAM."}),
        ("--compile", {
            "action": "store_true",
            "help": "torch.compile the UNet (GPU speed-up for long runs; the first restore "
            "pays minutes of compiling; falls back to normal with a note where it cannot).",
        }),
        ("--compile-mode", {
            "default": "default",
            "choices": COMPILE_MODES,
            "help": "with --compile: torch.compile's mode (reduce-overhead: CUDA graphs, "
            "more GPU memory).",
        }),
        ("--allow-pickle", {
            "action": "store_true",
            "help": "Allow .ckpt/.bin checkpoints (they can run code; only trusted files).",
        }),
        ("--allow-download", {
            "action": "store_true",
            "help": "Download a hub model that is not on this machine yet.",
        }),
    ]  # fmt: skip


# ModelSpec field -> the option's dest where they differ (every other field is its dest)
SPEC_DESTS = {"source": "model"}


def add_model_options(parser) -> None:
    """The options of the SD model to run (`parser`: a parser or an argument group). An
    option the command already has (eval's --allow-download also covers its CLIP model)
    is left as the command defined it."""
    for flag, options in _model_options(DEFAULT_SD_MODEL):
        try:
            parser.add_argument(flag, **options)
        except argparse.ArgumentError:
            continue


def model_spec_from_args(args: argparse.Namespace) -> ModelSpec:
    """The ModelSpec the parsed model options describe (an option the command does not
    have takes the spec's default; eval's --models-dir is the models folder).
    InvalidModelSpec (a ModelError) names each bad option by its flag."""
    values, flags = {}, {}
    for name, spec_field in ModelSpec.model_fields.items():
        dest = SPEC_DESTS.get(name, name)
        values[name] = getattr(args, dest, spec_field.default)
        flags[name] = "--" + dest.replace("_", "-")
    return ModelSpec.checked(values, names=flags)


# --- restorers ------------------------------------------------------------------------
def add_restorer_options(parser: argparse.ArgumentParser, default: str = "diffusion") -> None:
    """--mode (one choice per registered restorer) and the model options where a
    restorer needs a model."""
    modes = "; ".join(f"{name}: {cls.summary}" for name, cls in RESTORERS.items())
    parser.add_argument("--mode", choices=tuple(RESTORERS), default=default, help=modes + ".")
    if any(cls.needs_model for cls in RESTORERS.values()):
        add_model_options(parser)


def restorer_from_args(args: argparse.Namespace, name: str | None = None) -> EngineRestorer:
    """The restorer `name` (default: --mode) built from the parsed options; a restorer
    with a model loads it here (ModelError when it cannot)."""
    from engine.runtime import Engine

    cls = restorer_class(name or args.mode)
    spec = model_spec_from_args(args) if cls.needs_model else None
    loaded = cls.from_spec(spec, on_message=note_to_stderr)
    # like every driver, the command runs its model through an Engine (engine.runtime)
    return Engine(getattr(loaded, "model", None)).restorer(cls.name, who="this command")


# --- running a command ----------------------------------------------------------------
def run_command(args: argparse.Namespace) -> int:
    """args.func(args), with engine errors printed as one line and mapped to exit codes.
    Whatever it prints goes through SafeStream: file names (in results, progress, errors)
    never reach the terminal with their control characters (engine.io.names)."""
    with safe_output():
        return _run(args)


@contextmanager
def safe_output() -> Iterator[None]:
    """sys.stdout and sys.stderr through SafeStream meanwhile (control characters of
    file names escaped: engine.io.names)."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = streams


def _run(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MODEL
    except (Cancelled, KeyboardInterrupt):
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except EditedIDError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED


def parse_subcommand(
    prog: str, add_parser, command: str, argv: Sequence[str] | None
) -> argparse.Namespace:
    """Parse argv of one sub-command run on its own (`add_parser(subparsers)` adds it)."""
    parser = argparse.ArgumentParser(prog=prog)
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args([command, *(argv if argv is not None else sys.argv[1:])])
