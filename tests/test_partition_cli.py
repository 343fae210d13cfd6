"""`distthrml partition`: generators, files, configs, output formats and errors."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from partition import Partition
from cluster import cli
from cluster.partition_cli import add_parser, run

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    return cli.main(["partition", *argv])


def run_json(capsys, *argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_torus_json(capsys):
    report = run_json(capsys, "--graph", "torus", "--size", "32x32", "--parts", "4", "--bytes-per-node", "4")
    assert report["graph"] == "torus-32x32" and report["n_nodes"] == 1024 and report["n_parts"] == 4
    assert report["halo_bytes_per_sweep"] == 4 * report["mean_halo"] * 4
    assert report["method"] == "metis"


def test_table_output(capsys):
    assert main(["--graph", "grid2d", "--size", "10x12", "--parts", "3", "--method", "contiguous"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(None, 1) for line in out.strip().splitlines() if len(line.split(None, 1)) == 2)
    assert lines["n_nodes"].strip() == "120"
    assert lines["method"].strip() == "contiguous"
    assert "edge_cut" in lines


def test_other_generators(capsys):
    report = run_json(capsys, "--graph", "pegasus", "--m", "3", "--parts", "2")
    assert report["graph"] == "pegasus-3"
    report = run_json(capsys, "--graph", "random-regular", "--nodes", "200", "--degree", "3", "--parts", "5")
    assert report["n_edges"] == 300
    report = run_json(capsys, "--graph", "random", "--nodes", "300", "--mean-degree", "4", "--parts", "2")
    assert report["n_nodes"] == 300


def test_edge_list_file_and_save(tmp_path, capsys):
    edges = tmp_path / "ring.txt"
    edges.write_text("\n".join(f"{i} {(i + 1) % 20}" for i in range(20)))
    saved = tmp_path / "ring.npz"
    report = run_json(capsys, "--edges", str(edges), "--parts", "2", "--save", str(saved))
    assert report["n_nodes"] == 20 and report["edge_cut"] == 2
    assert Partition.load(saved).n_parts == 2


def test_hierarchical_capacity_and_colors(capsys):
    report = run_json(capsys, "--graph", "torus", "--size", "24x24", "--hosts", "2", "--devices-per-host", "2")
    assert report["n_parts"] == 4 and "inter_host_bytes" in report["traffic_per_level"]
    report = run_json(capsys, "--graph", "torus", "--size", "24x24", "--capacity", "100", "--colors")
    assert report["n_parts"] == 6 and max(report["part_sizes"]) <= 100
    assert report["n_colors"] == 2


def test_config_file_with_overrides(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(
        "graph:\n  kind: torus\n  size: [16, 20]\npartition:\n  parts: 4\n  method: random\n  bytes_per_node: 2\n"
    )
    report = run_json(capsys, "--config", str(config))
    assert report["n_nodes"] == 320 and report["method"] == "random" and report["n_parts"] == 4
    report = run_json(capsys, "--config", str(config), "--parts", "2", "--method", "metis")
    assert report["n_parts"] == 2 and report["method"] == "metis"


def test_repository_configs_run(capsys):
    for name in ("partition_torus.yaml", "partition_pegasus.yaml"):
        path = ROOT / "configs" / name
        # shrink the torus so the test stays fast; the rest of the config is used as written
        extra = ["--size", "40x40"] if "torus" in name else []
        report = run_json(capsys, "--config", str(path), *extra)
        assert report["n_parts"] >= 2


def test_plot(tmp_path, capsys):
    image = tmp_path / "torus.png"
    report = run_json(capsys, "--graph", "torus", "--size", "20x20", "--parts", "4", "--plot", str(image))
    assert report["plot"] == str(image)
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give a graph"),
        (["--graph", "torus"], "needs a size"),
        (["--graph", "torus", "--size", "axb"], "ROWSxCOLS"),
        (["--graph", "torus", "--size", "4x4", "--parts", "17"], "exceeds the number of nodes"),
        (["--graph", "torus", "--size", "4x4", "--parts", "0"], "n_parts must be at least 1"),
        (["--graph", "pegasus"], "needs 'm'"),
        (["--graph", "random-regular", "--nodes", "5", "--degree", "3"], "even"),
        (["--edges", "/nonexistent/edges.txt"], "/nonexistent/edges.txt"),
        (["--config", "/nonexistent/run.yaml"], "/nonexistent/run.yaml"),
        (["--graph", "torus", "--size", "4x4", "--hosts", "2"], "go together"),
        (["--graph", "torus", "--size", "4x4", "--capacity", "3", "--parts", "2"], "capacity too small"),
        (["--graph", "random", "--nodes", "50", "--plot", "x.png"], "coordinates"),
        (["--graph", "torus", "--size", "4x4", "--edges", "e.txt"], "only one"),
    ],
)
def test_errors_exit_2_with_a_message(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_config_keys(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("graph:\n  kind: torus\n  size: 4x4\npartition:\n  partz: 4\n")
    assert main(["--config", str(config)]) == 2
    assert "partz" in capsys.readouterr().err


def test_add_parser_registers_the_subcommand(capsys):
    parser = argparse.ArgumentParser(prog="distthrml")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["partition", "--graph", "grid2d", "--size", "6x6", "--parts", "2", "--json"])
    assert args.command == "partition" and args.handler is run
    assert args.handler(args) == 0
    assert json.loads(capsys.readouterr().out)["n_parts"] == 2


def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "cluster.cli", "partition", "--graph", "torus", "--size", "8x8", "--parts", "2", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert json.loads(result.stdout)["edge_cut"] == 16
