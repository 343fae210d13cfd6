"""`distthrml emulate CONFIG`: map a model onto a chip system, sample it on emulated chips,
report traffic and projected cost; `--sweep parts=...` / `--sweep bandwidth=...` adds a curve."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import numpy as np

from .config import EmulateConfigError, load_emulate_config, with_overrides


def parse_sweep(text: str) -> tuple[str, list]:
    """`"parts=4,8,16"` -> `("parts", [4, 8, 16])`; `"bandwidth=1e10,2e10"` -> floats.

    **Arguments:**

    - `text`: the `--sweep` value.
    """
    over, _, values = text.partition("=")
    if over not in ("parts", "bandwidth") or not values:
        raise EmulateConfigError(f"--sweep must look like parts=4,8,16 or bandwidth=1e10,2e10, got {text!r}")
    try:
        parsed = [int(v) if over == "parts" else float(v) for v in values.split(",")]
    except ValueError:
        raise EmulateConfigError(f"--sweep {over}: values must be numbers, got {values!r}") from None
    return over, parsed


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
    for name, text in (("emulation.json", json.dumps(jsonable(report), indent=1)), ("report.txt", format_report(report) + "\n")):
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
    run, model = result.get("run"), result["model"]
    if run is not None and model.lattice is not None:
        mp = result["mapping"]
        chip_of_node = np.asarray(mp.placement)[np.asarray(mp.partition.assignment)]
        P.plot_samples(run["samples"][0, -1], model.lattice, chip_of_node, out / "samples.png")
        files.append("samples.png")
    return files


def run(args: argparse.Namespace) -> int:
    """Handler of `distthrml emulate`.

    **Arguments:**

    - `args`: the parsed command line (see `distthrml.cli._add_emulate_parser`).
    """
    from distthrml.jobs.config import ConfigError
    from distthrml.jobs.devices import run_devices

    from .report import build_report, format_report
    from .run import emulate

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
    use_ray = args.launcher == "ray" or (args.launcher == "auto" and (args.address or os.environ.get("RAY_ADDRESS")))
    if sample and use_ray:
        from ..ray_launch import RayLaunch
        from .ray_chips import chips_per_worker

        launch = RayLaunch(address=args.address, workers=args.workers,
                           devices_per_worker=chips_per_worker(config.n_chips, args.workers, 1 if args.use_gpu else args.devices_per_worker),
                           cpus_per_worker=args.cpus_per_worker, max_failures=0, use_gpu=args.use_gpu)
    elif sample:
        try:
            devices = run_devices(config.n_chips)  # one emulated CPU device per chip
        except ConfigError as err:
            raise EmulateConfigError(str(err)) from None
    out = pathlib.Path(args.out or config.output.dir)
    result = emulate(config, devices, sample=sample, launch=launch, storage=out / "ray")
    report = build_report(result, config)
    report["wall_s"] = time.perf_counter() - start
    files = write_outputs(report, result, out, config.output.plots and not args.no_plots)
    print(format_report(report))
    print(f"\nwrote {', '.join(files)} to {out}/ ({report['wall_s']:.1f} s)")
    return 0
