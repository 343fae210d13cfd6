"""The layers hold: the import graph of the source (every import, also inside functions), read
with `ast`, has the arrows the design allows and no circles."""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _module(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> list[tuple[str, list[str]]]:
    """`(module, names imported from it)` for every import of `path`, anywhere in the file."""
    package = _module(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            out.append((".".join(base + ([node.module] if node.module else [])), [a.name for a in node.names]))
    return out


def _graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    files = [p for pkg in packages for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported, names in _imports(path):
            # `from pkg import sub` is an arrow to the module sub; `from mod import f` to mod
            found = [f"{imported}.{n}" for n in names if f"{imported}.{n}" in modules]
            if len(found) < len(names) or not names:
                while imported and imported not in modules:
                    imported = imported.rpartition(".")[0]
                found.append(imported)
            targets |= {t for t in found if t and t != name}
        graph[name] = targets
    return graph


GRAPH = _graph(("partition", "distthrml", "cluster"))


def _external(module: str) -> set[str]:
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    return {i.split(".")[0] for i, _ in _imports(path)}


def test_partition_imports_no_jax_ray_or_distthrml():
    for module in (m for m in GRAPH if m.startswith("partition")):
        bad = _external(module) & {"jax", "jaxlib", "equinox", "ray", "distthrml", "cluster", "yaml", "argparse"}
        assert not bad, f"{module} imports {bad}"


LIBRARY = [m for m in GRAPH if m.startswith(("partition", "distthrml"))]


@pytest.mark.parametrize("module", [m for m in LIBRARY if m.startswith("distthrml")])
def test_distthrml_imports_no_application_code(module):
    bad = _external(module) & {"ray", "cluster", "yaml", "argparse", "tqdm", "matplotlib"}
    assert not bad, f"{module} imports {bad}"


def test_importing_distthrml_loads_no_application_code():
    # argparse is left out: JAX itself imports it
    code = ("import sys, distthrml, distthrml.sharding.launch, distthrml.models\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'yaml', 'tqdm', 'matplotlib', 'ray', 'cluster'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


CORE = [m for m in GRAPH if m.startswith("distthrml.") and m.split(".")[1] not in ("sharding", "models")]


@pytest.mark.parametrize("module", CORE)
def test_the_core_does_not_import_sharding_or_models(module):
    assert not {t for t in GRAPH[module] if t.startswith(("distthrml.sharding", "distthrml.models"))}


def test_sharding_does_not_import_models():
    for module in (m for m in GRAPH if m.startswith("distthrml.sharding")):
        assert not {t for t in GRAPH[module] if t.startswith("distthrml.models")}, module


def test_every_subcommand_parser_sits_next_to_its_handler():
    from cluster import cli

    parser = cli.build_parser()
    examples = {"cluster.run.cli": ["run", "c.yaml"], "cluster.partition_cli": ["partition"],
                "cluster.train.cli": ["train", "c.yaml", "--workdir", "w"], "cluster.emulate.cli": ["emulate", "c.yaml"],
                "cluster.launch_cli": ["launch", "x.py"]}
    assert sorted(m.__name__ for m in cli.SUBCOMMANDS) == sorted(examples)
    for module, argv in examples.items():
        assert parser.parse_args(argv).handler.__module__ == module, argv[0]


def test_no_import_circles():
    """No strongly connected component of more than one module (Tarjan), across partition,
    distthrml and cluster."""
    graph = GRAPH
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"
