"""The CLI a newcomer meets first: `--help` without JAX, `--version`, `config show` with
every field's help, flags only where a command uses them, and progress that reaches a
log line by line (a bar only where it can redraw)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import yaml

from discovery.cli import main
from discovery.config import load_config
from discovery.config_show import docstring_attributes, field_help, show_config
from discovery.drift_training import MetaTrainConfig
from discovery.progress import PlainLines, elapsed_text, interval_from_env, progress


def test_the_cli_imports_without_jax_so_help_answers_at_once():
    code = ("import sys, discovery.cli; assert 'jax' not in sys.modules, 'jax imported'; "
            "import jax; print(jax.config.jax_compilation_cache_dir)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    # The setup that needs JAX ran the moment JAX was imported: the cache is configured.
    assert done.stdout.strip() not in ("", "None")


def test_version_is_the_package_version(capsys):
    from discovery import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"discover {__version__}"


def test_config_show_prints_a_loadable_config_with_help_and_ranges(tmp_path, capsys):
    assert main(["config", "show", "--set", "es.population_size=8"]) == 0
    text = capsys.readouterr().out
    assert "population_size: 8" in text
    generations = next(line for line in text.splitlines() if line.startswith("generations:"))
    assert "ES generations" in generations and "[>= 1]" in generations
    lr = next(line for line in text.splitlines() if line.strip().startswith("lr: 0.01"))
    assert "Adam step size" in lr
    # What it prints is the config: it loads back equal, comments and all.
    path = tmp_path / "shown.yaml"
    path.write_text(text)
    shown = load_config(MetaTrainConfig, path)
    assert shown == load_config(MetaTrainConfig, None, ["es.population_size=8"])
    assert yaml.safe_load(text)["es"]["population_size"] == 8


@pytest.mark.parametrize("argv, expected", [
    (["config", "show", "--component", "nope"], "--component: got 'nope'; allowed: drift"),
    (["config", "show", "--for", "train", "--component", "drift"],
     "--component: got 'drift' with --for train; allowed: only for meta-train"),
])
def test_config_show_refuses_a_component_it_cannot_show(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_config_show_for_train_and_other_components(capsys):
    assert main(["config", "show", "--for", "train"]) == 0
    assert "env: CartPole-v1" in capsys.readouterr().out
    assert main(["config", "show", "--component", "objective"]) == 0
    assert "component: objective" in capsys.readouterr().out


def test_every_field_of_the_run_configs_has_help():
    from discovery.components import COMPONENTS
    from discovery.train import TrainConfig

    for cls in [TrainConfig] + [component.config_class for component in COMPONENTS.values()]:
        missing = [name for name, text in field_help(cls).items()
                   if not text or text.startswith("[")]
        assert not missing, f"{cls.__name__}: no help for {missing}"


def test_docstring_attributes_join_continuations_and_shared_descriptions():
    class Example:
        """Something.

        Attributes:
          first: one line
            that goes on.
          low, high: a range.

        Returns:
          nothing: not an attribute.
        """

    assert docstring_attributes(Example) == {
        "first": "one line that goes on.", "low": "a range.", "high": "a range."}


def test_show_config_nests_sections():
    text = show_config(MetaTrainConfig())
    assert "\ntask:" in text and "\n  ppo:" in text and "\n    num_envs: 4" in text


def test_interpret_refuses_set_and_demo_help_does_not_offer_resume(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["interpret", "zoo:lpo-cartpole", "--set", "ppo.lr=1"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--resume" not in capsys.readouterr().out


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_prints_the_first_the_due_and_the_last_line():
    stream, clock = io.StringIO(), Clock()
    report = PlainLines("generation", 10, stream, interval_s=30, clock=clock)
    for done in range(1, 11):
        clock.now = 10.0 * done
        report(done, 10, f"fitness {done}")
    lines = stream.getvalue().splitlines()
    # First at 10 s, then 40 s and 70 s (30 s apart), then the last unit at 100 s.
    assert [line.split("] ")[1].split(":")[1].split()[0] for line in lines] == \
        ["1/10", "4/10", "7/10", "10/10"]
    assert lines[-1].endswith("(100%) fitness 10, 1 min 40 s elapsed")
    report(10, 10, "fitness 10")  # nothing new
    assert len(stream.getvalue().splitlines()) == 4
    report(10, 10, "evaluating held out")  # the step's next phase is news
    assert stream.getvalue().splitlines()[-1].split("(100%) ")[1].startswith("evaluating")


def test_progress_outside_a_terminal_is_plain_lines_and_a_total_may_come_later():
    from rich.console import Console

    stream = io.StringIO()
    console = Console(file=io.StringIO(), force_terminal=False, force_jupyter=False)
    with progress("piece", console=console, interval_s=0, stream=stream) as report:
        report(1, 4, "a")
        report(4, None, "b")
    assert stream.getvalue().splitlines()[0].endswith("piece: 1/4 (25%) a, 0 s elapsed")
    assert "piece: 4/4 (100%) b" in stream.getvalue()


def test_progress_interval_setting_is_checked(monkeypatch):
    monkeypatch.setenv("DISCOVERY_PROGRESS_INTERVAL_S", "5")
    assert interval_from_env() == 5.0
    monkeypatch.setenv("DISCOVERY_PROGRESS_INTERVAL_S", "soon")
    with pytest.raises(ValueError, match="DISCOVERY_PROGRESS_INTERVAL_S='soon': allowed"):
        interval_from_env()
    assert elapsed_text(3725) == "1 h 02 min"
