"""What a newcomer sees when something is wrong: config errors name the file in one line, a
config of another command is named as such, Ctrl-C ends with one line and status 130, and no
progress bar writes into a log. All of it before JAX compiles anything."""

import pathlib
import signal
import subprocess
import sys
import time

import pytest

from cluster import cli
from cluster.progress import progress_bar

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHIP_CONFIG = ROOT / "configs" / "chips" / "small.yaml"
TRAIN_CONFIG = ROOT / "configs" / "train_digits.yaml"
RUN_CONFIG = ROOT / "configs" / "quickstart.yaml"
PARTITION_CONFIG = ROOT / "configs" / "partition_torus.yaml"


def _error(capsys, *argv) -> str:
    assert cli.main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("distthrml: error: ") and err.count("\n") == 1, err  # one line
    return err


def _args(command: str, path) -> list[str]:
    if command == "partition":
        return ["partition", "--config", str(path)]
    return [command, str(path)] + (["--workdir", "unused"] if command == "train" else [])


COMMANDS = ["run", "partition", "train", "emulate"]


@pytest.mark.parametrize("command", COMMANDS)
def test_yaml_syntax_error_is_one_line_naming_file_and_position(tmp_path, capsys, command):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  kind: ising2d\n  rows: [8\n")
    err = _error(capsys, *_args(command, path))
    assert f"{path}:4:1: not valid YAML: while parsing a flow sequence" in err, err


@pytest.mark.parametrize("command", COMMANDS)
def test_binary_file_is_named_not_decoded(tmp_path, capsys, command):
    path = tmp_path / "model.npz"
    path.write_bytes(b"PK\x03\x04\xff\xfe\x00binary")
    err = _error(capsys, *_args(command, path))
    assert f"{path}: not a text file" in err and "codec" not in err


@pytest.mark.parametrize("command", COMMANDS)
def test_directory_is_not_reported_as_missing(tmp_path, capsys, command):
    err = _error(capsys, *_args(command, tmp_path))
    assert f"{tmp_path} is a directory, not a config file" in err and "not found" not in err


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_file(tmp_path, capsys, command):
    assert f"config file not found: {tmp_path / 'nope.yaml'}" in _error(capsys, *_args(command, tmp_path / "nope.yaml"))


@pytest.mark.parametrize(
    "command, path, owner",
    [
        ("run", CHIP_CONFIG, "emulate"),
        ("run", TRAIN_CONFIG, "train"),
        ("run", PARTITION_CONFIG, "partition"),
        ("emulate", RUN_CONFIG, "run"),
        ("emulate", TRAIN_CONFIG, "train"),
        ("train", CHIP_CONFIG, "emulate"),
        ("partition", RUN_CONFIG, "run"),
    ],
)
def test_another_commands_config_is_named_as_such(capsys, command, path, owner):
    err = _error(capsys, *_args(command, path))
    assert f"{path}: this is a `distthrml {owner}` config" in err and "did you mean" not in err


@pytest.mark.parametrize(
    "text, message",
    [
        ("model: {kind: ising2d, rowz: 8}", "unknown key(s) in 'model'"),
        ("sampling: {chains: two}", "'sampling.chains' must be int"),
        ("model: {kind: ising2d, m: 4}", "'model.m' does not apply"),
        ("devices: 2\nsharding: {parts: 4}", "= 4 devices, but only 2 are available"),
    ],
)
def test_run_config_errors_name_the_file(tmp_path, capsys, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    err = _error(capsys, "run", str(path))
    assert f"distthrml: error: {path}: " in err and message in err


def test_errors_found_while_building_name_the_file(tmp_path, capsys):
    (tmp_path / "g.txt").write_text("0 1\n1 1\n")
    path = tmp_path / "c.yaml"
    path.write_text("model: {kind: edge_list, path: g.txt}\nsharding: {parts: 1}\n")
    err = _error(capsys, "run", str(path))
    assert f"{path}: model.path: edge list" in err and "self loop" in err


def test_ctrl_c_prints_one_line_and_exits_130(monkeypatch, capsys):
    from cluster.run import cli as run_cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_cli, "run", interrupted)
    assert cli.main(["run", str(RUN_CONFIG)]) == cli.INTERRUPTED == 130
    assert capsys.readouterr().err == "distthrml run: interrupted\n"


def test_ctrl_c_of_a_real_process(tmp_path):
    """SIGINT while the job starts up: no traceback, status 130."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-c", "import time, cluster.cli as c, sys\n"
                             "from cluster.run import cli as r\n"
                             "r.run = lambda args: (print('ready', flush=True), time.sleep(60))\n"
                             f"sys.exit(c.main(['run', {str(RUN_CONFIG)!r}]))"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            # a test runner started in the background inherits SIGINT ignored, and
                            # Python then keeps it ignored: give the child a terminal's default
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().strip() == "ready"
    # "ready" is printed from inside the handler, so Python's SIGINT handler is in place; under
    # load the signal can still land before the sleep starts, so it is resent, boundedly
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and err == "distthrml run: interrupted\n", err


@pytest.mark.parametrize("command", ["run", "train", "emulate"])
def test_every_long_command_has_no_progress(command):
    argv = _args(command, "c.yaml") + ["--no-progress"]
    assert cli.build_parser().parse_args(argv).no_progress is True


def test_the_bar_shows_only_on_a_terminal(monkeypatch):
    # under pytest standard error is captured: not a terminal
    assert progress_bar(10).disable is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress_bar(10).disable is False
    assert progress_bar(10, enabled=False).disable is True


def test_train_writes_no_bar_into_a_log(tmp_path):
    """The training bar stays out of a non-terminal standard error (the log)."""
    from cluster.train.metrics import MetricsLog

    log = MetricsLog(tmp_path, 0, 5, tensorboard=False, progress=True)
    try:
        assert log.bar.disable is True
    finally:
        log.close()


def test_a_ctrl_c_dropped_inside_a_gc_callback_still_interrupts():
    """Python drops a KeyboardInterrupt raised inside a garbage collector callback (SIGINT's
    handler runs wherever the main thread is); the command must still be interrupted."""
    import gc
    import os

    from cluster.cli import interrupts_not_dropped

    def ctrl_c_inside_gc(phase, info):
        if phase == "start":
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    gc.callbacks.append(ctrl_c_inside_gc)
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts_not_dropped():
                gc.collect()
                gc.callbacks.remove(ctrl_c_inside_gc)
                time.sleep(5)  # the interrupt comes a moment later
    finally:
        if ctrl_c_inside_gc in gc.callbacks:
            gc.callbacks.remove(ctrl_c_inside_gc)
        signal.signal(signal.SIGINT, previous)
