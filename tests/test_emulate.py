"""Many-chip emulation (cluster/emulate): traffic counts, projection formulas, config errors,
and emulated samples identical to unsharded ones."""

from __future__ import annotations

import subprocess
import sys

import jax
import numpy as np
import pytest

import distthrml as dt
from cluster.config_file import ConfigError
from cluster.emulate import config as C
from cluster.emulate import run as R
from cluster.emulate.placement import place_parts, placement_cost
from cluster.emulate.projection import project
from cluster.emulate.topology import build_topology
from cluster.emulate.traffic import Traffic, count_traffic
from cluster.workloads.build import build_model


def _raw(**over) -> dict:
    raw = {
        "model": {"kind": "ising2d", "rows": 32, "cols": 16, "beta": 0.3},
        "chips": {"capacity": 128, "time_per_color_step": 1e-8},
        "links": {"topology": "ring", "count": 4, "bandwidth": 1e9, "latency": 1e-7, "state_bits": 1},
        "energy": {"per_flip": 2e-15, "per_bit": 1e-12},
        "mapping": {"method": "contiguous", "placement": "identity"},
        "run": {"chains": 2, "warmup": 2, "samples": 3, "steps_per_sample": 2, "seed": 3},
    }
    for section, fields in over.items():
        raw[section] = {**raw.get(section, {}), **fields} if fields is not None else None
    return raw


def _config(**over) -> C.EmulateConfig:
    return C.parse_emulate_config(_raw(**over))


# --- traffic ---------------------------------------------------------------------------------


@pytest.mark.parametrize("placement", ["identity", "greedy_swap"])
def test_strip_traffic_equals_analytical_cut(placement):
    # a 32x16 torus cut into 4 horizontal strips of 8 rows: strips form a ring, and each strip
    # boundary carries one row (`cols` spins) each way per sweep, half of it in each colour step
    cols, k = 16, 4  # 32 rows: strips of 8
    config = _config(mapping={"placement": placement})
    model = build_model(config.model)
    topo = build_topology(config.links)
    mp = R.map_model(model, config, topo, k, partition=_strips(model, k))
    expected = np.zeros((k, k), np.int64)
    for p in range(k):
        expected[p, (p + 1) % k] = expected[p, (p - 1) % k] = cols
    np.testing.assert_array_equal(mp.traffic.states.sum(axis=0), expected)
    np.testing.assert_array_equal(mp.traffic.states, np.stack([expected // 2, expected // 2]))
    assert mp.traffic.bytes_per_sweep == 2 * k * cols == mp.partition.report()["halo_bytes_per_sweep"]
    # on a ring, neighbouring strips sit on neighbouring chips: every directed link carries one row
    np.testing.assert_array_equal(mp.traffic.link_bits_per_sweep, np.full(2 * k, cols))
    assert mp.costs["bit_hops"][1] == 2 * k * cols and mp.traffic.max_hops.tolist() == [1, 1]


def _strips(model, k: int):
    # program indices run block by block (colour classes), not in node order: map them back
    from partition import Partition

    rows, cols = model.lattice
    node_of_index = np.concatenate([np.asarray(b.ids) - np.asarray(model.nodes.ids).min() for b in model.blocks])
    strip_of_node = np.arange(rows * cols) // cols // (rows // k)
    return Partition(strip_of_node[node_of_index], k, dt.interaction_graph(model.program), method="custom")


def test_multihop_routes_load_every_link_on_the_path():
    # strips placed on a 1x4 mesh (a line): the 0<->3 wrap traffic crosses all three links
    config = _config(links={"topology": "mesh2d", "shape": [1, 4], "count": None})
    model = build_model(config.model)
    mp = R.map_model(model, config, build_topology(config.links), 4, partition=_strips(model, 4))
    per_link = dict(zip(mp.traffic.links, mp.traffic.link_bits_per_sweep.tolist()))
    assert per_link == {(0, 1): 32, (1, 0): 32, (1, 2): 32, (2, 1): 32, (2, 3): 32, (3, 2): 32}
    assert mp.traffic.max_hops.tolist() == [3, 3]
    assert int(mp.traffic.bit_hops.sum()) == 6 * 16 + 2 * 16 * 3


def test_greedy_swap_placement_finds_the_ring():
    rng = np.random.default_rng(0)
    k = 8
    ring = np.zeros((k, k), np.int64)
    for p in range(k):
        ring[p, (p + 1) % k] = ring[p, (p - 1) % k] = 10
    perm = rng.permutation(k)
    traffic = ring[np.ix_(perm, perm)]  # parts shuffled
    hops = build_topology(C.LinksConfig(topology="ring", count=k)).hops
    placement = place_parts(traffic, hops)
    assert len(set(placement.tolist())) == k
    assert placement_cost(traffic, hops, placement) == traffic.sum()  # every message one hop
    assert placement_cost(traffic, hops, np.arange(k)) > traffic.sum()


def test_contiguous_mapping_cuts_a_lattice_into_row_strips():
    # node numbers are row-major; program indices run colour class by colour class
    config = _config(mapping={"method": "contiguous"})
    model = build_model(config.model)
    part = R.partition_model(model, config, 4)
    np.testing.assert_array_equal(part.assignment, _strips(model, 4).assignment)
    assert part.report()["edge_cut"] == 4 * 16  # 4 cuts of 16 columns (the torus wraps)


@pytest.mark.parametrize("model", [{"kind": "ising2d", "rows": 16, "cols": 16},
                                   {"kind": "random_regular", "n": 300, "degree": 5, "seed": 1}])
def test_partition_messages_equal_the_executed_plans(model):
    # what placement optimises (from the partition) is what the exchange plans carry
    from cluster.emulate.traffic import partition_part_traffic, route_parts
    from distthrml.sharding.layout import build_layout

    config = C.parse_emulate_config({**_raw(mapping={"method": "metis"}, chips={"capacity": 100}), "model": model})
    built = build_model(config.model)
    part = R.partition_model(built, config, 4)
    topology = build_topology(config.links)
    placement = np.array([2, 0, 3, 1])
    layout = build_layout(built.program, part)
    counted = count_traffic(built.program, layout, placement, topology, config.links.state_bits)
    predicted = route_parts(partition_part_traffic(built.program, part, config.links.state_bits), placement, topology)
    assert len(counted.steps) >= 2 and counted.states.sum() > 0
    for field in ("states", "chip_bits", "link_bits", "max_hops", "bit_hops", "step_nodes", "bytes_per_sweep"):
        np.testing.assert_array_equal(getattr(predicted, field), getattr(counted, field), err_msg=field)


def test_placement_lowers_the_longest_route_not_only_bit_hops():
    # 4 parts on a line of 4 chips: A-B and C-D talk a lot, A-D and B-C a little. Order A B C D
    # has the fewest bit-hops but a 3-hop route (A-D); A B D C costs 1 more bit-hop and its
    # longest route is 2 hops, which saves a hop of latency in every colour step
    from cluster.emulate.traffic import PartTraffic, route_parts

    bits = np.zeros((1, 4, 4), np.int64)
    for p, q, n in [(0, 1, 1000), (2, 3, 1000), (0, 3, 1), (1, 2, 2)]:
        bits[0, p, q] = bits[0, q, p] = n
    messages = PartTraffic([[0]], bits, bits, np.full((1, 4), 10), 0)
    config = _config(links={"topology": "explicit", "count": 4, "edges": [[0, 1], [1, 2], [2, 3]],
                            "bandwidth": 1e12, "latency": 1e-7})
    topology = build_topology(config.links)
    traffic = bits.sum(axis=0)

    def time_then_bit_hops(placement):
        routed = route_parts(messages, placement, topology)
        return project(routed, config)["sweep_time_s"], int(routed.bit_hops.sum())

    by_bit_hops = place_parts(traffic, topology.hops)
    by_time = place_parts(traffic, topology.hops, cost_of=time_then_bit_hops)
    assert route_parts(messages, by_bit_hops, topology).max_hops.tolist() == [3]
    assert route_parts(messages, by_time, topology).max_hops.tolist() == [2]
    assert placement_cost(traffic, topology.hops, by_time) == placement_cost(traffic, topology.hops, by_bit_hops) + 2
    assert time_then_bit_hops(by_time) < time_then_bit_hops(by_bit_hops)


def _triangle(slow: dict) -> C.EmulateConfig:
    edges = [[0, 1], [1, 2], [0, 2, slow]]
    return _config(links={"topology": "explicit", "count": 3, "edges": edges, "bandwidth": 1e9, "latency": 1e-7})


def test_links_with_their_own_bandwidth_and_latency():
    from cluster.emulate.traffic import PartTraffic, route_parts

    bits = np.zeros((1, 3, 3), np.int64)
    bits[0, 0, 2] = 1000
    messages = PartTraffic([[0]], bits, bits, np.full((1, 3), 5), 0)
    # a high-latency direct link: the route takes the two fast hops instead
    config = _triangle({"latency": 1e-6, "bandwidth": 2.5e8})
    topology = build_topology(config.links)
    assert not topology.uniform and topology.routes[0, 2] == [(0, 1), (1, 2)]
    assert topology.route_latency[0, 2] == pytest.approx(2e-7) and topology.hops[0, 2] == 2
    p = project(route_parts(messages, np.arange(3), topology), config, topology)
    assert p["steps"][0]["latency_s"] == pytest.approx(2e-7) and p["steps"][0]["link_time_s"] == pytest.approx(1e-6)
    # a slow but short direct link: taken, and its bandwidth sets the link time
    config = _triangle({"bandwidth": 2.5e8})
    topology = build_topology(config.links)
    assert topology.routes[0, 2] == [(0, 2)]
    routed = route_parts(messages, np.arange(3), topology)
    full = project(routed, config, topology)
    assert full["steps"][0]["latency_s"] == pytest.approx(1e-7) and full["bandwidth_term_s"] == pytest.approx(4e-6)
    assert full["link_utilisation"][topology.links().index((0, 2))] == pytest.approx(1000 / (2.5e8 * full["sweep_time_s"]))
    # links.bandwidth scales every link: halving it adds the bandwidth term once more
    half = project(routed, C.with_overrides(config, links={"bandwidth": 5e8}), topology)
    assert half["sweep_time_s"] - full["sweep_time_s"] == pytest.approx(full["bandwidth_term_s"], rel=1e-12)


@pytest.mark.parametrize("edge, message", [
    ([0, 2, {"bandwith": 1e9}], "third entry must be a mapping of bandwidth and/or latency"),
    ([0, 2, {"latency": -1}], r"links.edges\[2\].latency must be a positive number"),
    ([2, 1], "repeats the link 2-1"),
])
def test_explicit_link_errors(edge, message):
    with pytest.raises(ConfigError, match=message):
        _config(links={"topology": "explicit", "count": 3, "edges": [[0, 1], [1, 2], edge]})


def test_topologies():
    mesh = build_topology(C.LinksConfig(topology="mesh2d", shape=[3, 4]))
    torus = build_topology(C.LinksConfig(topology="torus2d", shape=[4, 4]))
    assert mesh.hops[0, 11] == 5 and torus.hops[0, 15] == 2 and torus.hops.max() == 4
    assert build_topology(C.LinksConfig(topology="all_to_all", count=5)).hops.max() == 1
    explicit = build_topology(C.LinksConfig(topology="explicit", count=3, edges=[[0, 1], [1, 2]]))
    assert explicit.routes[0, 2] == [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match="not connected"):
        build_topology(C.LinksConfig(topology="explicit", count=4, edges=[[0, 1], [2, 3]]))


# --- projection ------------------------------------------------------------------------------


def _traffic() -> Traffic:
    # two colour steps, two chips, one physical link (two directed links)
    return Traffic(
        steps=[[0], [1]], states=np.zeros((2, 2, 2), np.int64),
        chip_bits=np.array([[[0, 300], [100, 0]], [[0, 0], [50, 0]]]),
        links=[(0, 1), (1, 0)], link_bits=np.array([[300, 100], [0, 50]]),
        max_hops=np.array([2, 1]), bit_hops=np.array([800, 50]),
        step_nodes=np.array([[5, 7], [6, 2]]), bytes_per_sweep=0,
    )


def test_projection_follows_the_documented_formulas():
    cfg = _config(chips={"time_per_color_step": 1e-8}, links={"bandwidth": 100.0, "latency": 0.5})
    p = project(_traffic(), cfg)
    # step 0: 1e-8 + 0.5*2 + 300/100 ; step 1: 1e-8 + 0.5*1 + 50/100
    assert p["steps"][0]["step_s"] == pytest.approx(1e-8 + 1.0 + 3.0, rel=1e-12)
    assert p["steps"][1]["step_s"] == pytest.approx(1e-8 + 0.5 + 0.5, rel=1e-12)
    sweep = 2e-8 + 5.0
    assert p["sweep_time_s"] == pytest.approx(sweep, rel=1e-12)
    assert p["samples_per_s"] == pytest.approx(1 / sweep, rel=1e-12)
    assert p["energy_per_sample_j"] == pytest.approx(2e-15 * 20 + 1e-12 * 850, rel=1e-12)
    assert p["link_utilisation"] == pytest.approx([300 / (100 * sweep), 150 / (100 * sweep)], rel=1e-12)
    per_node = project(_traffic(), C.with_overrides(cfg, chips={"time_per_color_step": None, "time_per_node": 1e-3}))
    assert per_node["compute_s"] == pytest.approx(1e-3 * (7 + 6), rel=1e-12)


def test_halving_bandwidth_adds_the_bandwidth_term():
    cfg = _config(links={"bandwidth": 100.0, "latency": 0.5})
    full, half = project(_traffic(), cfg), project(_traffic(), C.with_overrides(cfg, links={"bandwidth": 50.0}))
    # T(B/2) - T(B) = sum_s max_link bits_s / B
    assert half["sweep_time_s"] - full["sweep_time_s"] == pytest.approx((300 + 50) / 100.0, rel=1e-12)
    assert half["bandwidth_term_s"] == pytest.approx(2 * full["bandwidth_term_s"], rel=1e-12)
    assert half["compute_s"] == full["compute_s"] and half["energy_per_sample_j"] == full["energy_per_sample_j"]


# --- config errors ---------------------------------------------------------------------------


def test_capacity_violations_are_rejected():
    config = _config(chips={"capacity": 100})  # 512 nodes > 4 chips x 100
    model = build_model(config.model)
    with pytest.raises(ConfigError, match=r"chips.capacity: the model's 512 nodes do not fit on 4 chips"):
        R.resolve_parts(config, model.n_nodes)
    tight = _config(mapping={"parts": 3})  # 3 x 128 < 512
    with pytest.raises(ConfigError, match=r"3 parts of at most 128 variables hold 384 < 512"):
        R.resolve_parts(tight, model.n_nodes)
    with pytest.raises(ConfigError, match=r"mapping.parts=5 exceeds the 4 chips"):
        _config(mapping={"parts": 5})


def test_unknown_and_bad_keys_are_named(tmp_path):
    import yaml

    path = tmp_path / "bad.yaml"
    raw = _raw(links={"bandwith": 1e9})
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key\(s\) in 'links': \['bandwith'\]"):
        C.load_emulate_config(path)
    with pytest.raises(ConfigError, match="unknown section"):
        C.parse_emulate_config({**_raw(), "chip": {}})
    with pytest.raises(ConfigError, match="exactly one of time_per_color_step, time_per_node"):
        _config(chips={"time_per_node": 1e-9})
    with pytest.raises(ConfigError, match=r"links.shape must be \[rows, cols\]"):
        _config(links={"topology": "torus2d", "count": None})
    with pytest.raises(ConfigError, match=r"links.edges\[1\]"):
        _config(links={"topology": "explicit", "edges": [[0, 1], [1, 9]]})
    with pytest.raises(ConfigError, match="links.bandwidth must be a positive number"):
        _config(links={"bandwidth": 0})
    assert _config(links={"bandwidth": "1.0e10"}).links.bandwidth == 1e10  # YAML 1.1's unsigned exponent
    with pytest.raises(ConfigError, match="model.rows"):
        _config(model={"rows": -3})


# --- the emulated run ------------------------------------------------------------------------


def test_emulated_samples_equal_unsharded_and_counts_match():
    config = _config(mapping={"method": "metis", "placement": "greedy_swap"}, chips={"capacity": 140})
    devices = jax.devices()[:4]
    result = R.emulate(config, devices, echo=lambda *_: None)
    run, mp = result["run"], result["mapping"]
    assert mp.layout is run["sprog"].layout  # the counted plans are the executed ones
    halo = mp.partition.report()["halo_bytes_per_sweep"]
    assert mp.traffic.bytes_per_sweep == run["halo_bytes_per_sweep"] == halo > 0
    # shard p runs on the device of its chip
    mesh_devices = list(run["sprog"].mesh.devices.ravel())
    assert mesh_devices == [devices[int(c)] for c in mp.placement]
    program, nodes = result["model"].program, result["model"].nodes
    unsharded = jax.vmap(lambda k, i: dt.sample_states(k, program, run["schedule"], i, [], [nodes])[0])(run["keys"], run["init"])
    np.testing.assert_array_equal(run["samples"], np.asarray(unsharded))


def test_chips_spread_over_ray_processes_sample_as_one_process(tmp_path):
    # 4 chips = 2 Ray workers x 2 devices of one jax.distributed run
    from cluster.ray_launch import RayLaunch

    config = _config(mapping={"method": "metis", "placement": "greedy_swap"}, chips={"capacity": 140})
    launch = RayLaunch(workers=2, devices_per_worker=2, cpus_per_worker=1, local_cpus=2, object_store_mb=200)
    over_ray = R.emulate(config, launch=launch, storage=tmp_path / "ray", echo=lambda *_: None)
    import ray

    assert not ray.is_initialized()
    local = R.emulate(config, jax.devices()[:4], echo=lambda *_: None)
    ran = over_ray["run"]
    assert ran["measured"]["processes"] == 2 and ran["measured"]["process_of_chip"] == [0, 0, 1, 1]
    np.testing.assert_array_equal(ran["samples"], local["run"]["samples"])
    np.testing.assert_array_equal(over_ray["mapping"].placement, local["mapping"].placement)
    for field in ("states", "link_bits", "max_hops", "bit_hops", "step_nodes"):
        np.testing.assert_array_equal(getattr(over_ray["mapping"].traffic, field), getattr(local["mapping"].traffic, field))
    assert ran["halo_bytes_per_sweep"] == over_ray["mapping"].partition.report()["halo_bytes_per_sweep"]


def test_ray_launch_shape_errors():
    from cluster.emulate.ray_chips import (
        check_every_worker_holds_a_part,
        chips_per_worker,
    )

    assert chips_per_worker(16, 2, None) == 8
    with pytest.raises(ConfigError, match="hold 6 chips; the system has 16"):
        chips_per_worker(16, 2, 3)
    with pytest.raises(ConfigError, match=r"worker\(s\) \[1\] would hold no part"):
        check_every_worker_holds_a_part(np.array([0, 1]), 2, 2)


def test_cli_no_sample_writes_report(tmp_path):
    import yaml

    from cluster.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_raw(sweep={"over": "parts", "values": [4]}, output={"dir": str(tmp_path / "o")})))
    assert main(["emulate", str(path), "--no-sample", "--sweep", "bandwidth=5e8,1e9"]) == 0
    import json

    report = json.loads((tmp_path / "o" / "emulation.json").read_text())
    rows = report["sweep"]["rows"]
    assert rows[0]["sweep_time_s"] - rows[1]["sweep_time_s"] == pytest.approx(rows[1]["bandwidth_term_s"], rel=1e-9)
    assert report["traffic"]["counted_equals_partition"] is True
    for name in ("report.txt", "chip_map.png", "traffic_heatmap.png", "sweep.png"):
        assert (tmp_path / "o" / name).is_file()
    assert main(["emulate", str(path), "--no-sample", "--sweep", "parts=x"]) == 2


def test_cli_parser_imports_neither_jax_nor_ray():
    # `distthrml --help` and argument errors stay instant: handlers import what they need
    code = "import sys, cluster.cli as c; c.build_parser(); print('jax' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def _lattice_cut(sites: np.ndarray) -> int:
    """Lattice-neighbour pairs of a periodic `[rows, cols]` array whose values differ."""
    return int((sites != np.roll(sites, 1, axis=0)).sum() + (sites != np.roll(sites, 1, axis=1)).sum())


def test_samples_png_draws_every_site_on_its_chip(tmp_path, monkeypatch):
    """The "chip of every site" image is in lattice order: its cut (neighbour pairs on different
    chips) is the partition's edge cut, and its colours are one per chip."""
    import json

    import yaml

    from cluster.cli import main
    from cluster.emulate import plots

    drawn = []
    original = plots.plot_samples

    def recording(*args, **kwargs):
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(plots, "plot_samples", recording)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_raw(mapping={"method": "metis", "placement": "greedy_swap"},
                                        chips={"capacity": 140}, output={"dir": str(tmp_path / "o")})))
    assert main(["emulate", str(path)]) == 0
    report = json.loads((tmp_path / "o" / "emulation.json").read_text())
    (chips,) = drawn
    assert chips.shape == (32, 16) and (tmp_path / "o" / "samples.png").is_file()
    assert _lattice_cut(chips) == report["mapping"]["edge_cut"] > 0
    assert sorted(np.unique(chips)) == sorted(report["mapping"]["placement"])
    cmap, norm = plots.chip_colors(4)
    assert cmap.N == 4 and norm(np.arange(4)).tolist() == [0, 1, 2, 3]


def test_a_run_config_given_to_emulate_is_named_as_one(tmp_path, capsys):
    from cluster.cli import main

    path = tmp_path / "run.yaml"
    path.write_text("model: {kind: ising2d, rows: 8, cols: 8}\nsampling: {chains: 2}\nsharding: {parts: 1}\n")
    assert main(["emulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: this is a `distthrml run` config" in err and "did you mean" not in err
