"""`distthrml emulate CONFIG`: map a model onto a chip system, sample it on emulated chips,
report traffic and projected cost; `--sweep parts=...` / `--sweep bandwidth=...` adds a curve.
The subcommand's parser and its handler."""

from __future__ import annotations

import argparse
import json
import pathlib
import time

from ..config_file import ConfigError
from ..progress import add_progress_flag
from ..ray_launch import add_ray_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `distthrml emulate` on an argparse subparsers object.

    **Arguments:**

    - `subparsers`: the result of `ArgumentParser.add_subparsers()`.
    """
    parser = subparsers.add_parser("emulate", help="map a model onto a many-chip system, sample it on emulated chips, "
                                   "report link traffic and projected sweep time / energy")
    parser.add_argument("config", help="YAML chip-system config (see configs/chips/small.yaml)")
    parser.add_argument("--out", help="output folder (default: the config's output.dir)")
    parser.add_argument("--sweep", help="sweep mode: parts=4,8,16 or bandwidth=1e10,2e10,... (plots sweep.png)")
    parser.add_argument("--parts", type=int, help="number of parts K (default: mapping.parts, else ceil(nodes / capacity))")
    parser.add_argument("--bandwidth", type=float, help="override links.bandwidth (bits/s per direction)")
    parser.add_argument("--no-sample", action="store_true", help="map and project only, do not sample")
    parser.add_argument("--no-plots", action="store_true", help="write no PNGs")
    add_progress_flag(parser)
    add_ray_arguments(parser, devices_per_worker=None)  # Ray: the chips are the workers' devices
    parser.set_defaults(handler=run)
    return parser


def parse_sweep(text: str) -> tuple[str, list]:
    """`"parts=4,8,16"` -> `("parts", [4, 8, 16])`; `"bandwidth=1e10,2e10"` -> floats.

    **Arguments:**

    - `text`: the `--sweep` value.
    """
    over, _, values = text.partition("=")
    if over not in ("parts", "bandwidth") or not values:
        raise ConfigError(f"--sweep must look like parts=4,8,16 or bandwidth=1e10,2e10, got {text!r}")
    try:
        parsed = [int(v) if over == "parts" else float(v) for v in values.split(",")]
    except ValueError:
        raise ConfigError(f"--sweep {over}: values must be numbers, got {values!r}") from None
    return over, parsed


def run(args: argparse.Namespace) -> int:
    """Run `distthrml emulate` with parsed arguments; returns the exit status.

    **Arguments:**

    - `args`: from the parser `add_parser` made.
    """
    from ..devices import run_devices
    from ..progress import progress_bar
    from ..ray_launch import wants_ray
    from .config import load_emulate_config, with_overrides
    from .report import build_report, format_report
    from .run import emulate, stages

    start = time.perf_counter()
    config = load_emulate_config(args.config)
    if args.sweep:
        over, values = parse_sweep(args.sweep)
        config = with_overrides(config, sweep={"over": over, "values": values})
    if args.bandwidth is not None:
        config = with_overrides(config, links={"bandwidth": args.bandwidth})
    if args.parts is not None:
        config = with_overrides(config, mapping={"parts": args.parts})
    sample = config.run.sample and not args.no_sample
    devices, launch = None, None
    if sample and wants_ray(args):
        from ..ray_launch import RayLaunch
        from .ray_chips import chips_per_worker

        launch = RayLaunch(address=args.address, workers=args.workers,
                           devices_per_worker=chips_per_worker(config.n_chips, args.workers, 1 if args.use_gpu else args.devices_per_worker),
                           cpus_per_worker=args.cpus_per_worker, max_failures=0, use_gpu=args.use_gpu)
    elif sample:
        devices = run_devices(config.n_chips)  # one emulated CPU device per chip
    out = pathlib.Path(args.out or config.output.dir)
    with progress_bar(stages(config, sample), enabled=not args.no_progress, desc="emulate", unit="stage") as bar:
        result = emulate(config, devices, sample=sample, launch=launch, storage=out / "ray", echo=bar.write,
                         on_stage=bar.update)
    report = build_report(result, config)
    report["wall_s"] = time.perf_counter() - start
    files = write_outputs(report, result, out, config.output.plots and not args.no_plots)
    print(format_report(report))
    print(f"\nwrote {', '.join(files)} to {out}/ ({report['wall_s']:.1f} s)")
    return 0


def write_outputs(report: dict, result: dict, out: pathlib.Path, plots: bool) -> list[str]:
    """Write emulation.json, report.txt and the PNGs into `out`; returns the file names.

    **Arguments:**

    - `report`: a `build_report` dict.
    - `result`: what `run.emulate` returned (topology, samples).
    - `out`: the output folder.
    - `plots`: draw PNGs.
    """
    from .report import format_report, jsonable

    out.mkdir(parents=True, exist_ok=True)
    files = ["emulation.json", "report.txt"]
    # write-then-rename, so that a crash never leaves a half-written report over a good one
    for name, text in (("emulation.json", json.dumps(jsonable(report), indent=1, allow_nan=False)), ("report.txt", format_report(report) + "\n")):
        tmp = out / (name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out / name)
    if not plots:
        return files
    from . import plots as P

    P.plot_chip_map(report, result["topology"], out / "chip_map.png")
    P.plot_heatmap(report, out / "traffic_heatmap.png")
    files += ["chip_map.png", "traffic_heatmap.png"]
    if "sweep" in report:
        P.plot_sweep(report, out / "sweep.png")
        files.append("sweep.png")
    ran, model = result.get("run"), result["model"]
    if ran is not None and model.lattice is not None:
        P.plot_samples(ran["samples"][0, -1], P.chip_of_site(model, result["mapping"]), result["topology"].n_chips,
                       out / "samples.png", model.categories)
        files.append("samples.png")
    return files
