"""Bad input is refused before any compute: exit status 2, one line naming the flag or
field, the value and what is allowed, and nothing written (issue 36). A property test
covers the comma-separated flag values."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from discovery import reproduce, zoo
from discovery.cli import MAX_HORIZON, MIN_HORIZON, main, parse_horizons, split_list
from discovery.config import MAX_CONFIG_BYTES, ConfigError

REPO = Path(__file__).resolve().parents[2]
CLAIM = "dpo-vs-ppo-minatar"
EVALUATE = ["evaluate", "zoo:lpo-cartpole-demo"]


def _tree(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*")}


def _refused(argv: list[str], tmp_path: Path, capsys) -> str:
    """Run ``discover argv``: exit 2, one line on stderr, ``tmp_path`` unchanged; the line."""
    before = _tree(tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"discover {argv[0]}: error: "), err
    assert _tree(tmp_path) == before, "nothing may be written"
    return lines[0]


def _has(line: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"


# ------------------------------------------------------------------ comma-separated lists


@pytest.mark.parametrize("flag, value, fragments", [
    ("--horizons", "1,,2", ["'1,,2'", "item 2 is empty", "from 0.01 to 100"]),
    ("--horizons", "1,", ["'1,'", "item 2 is empty"]),
    ("--horizons", "1e-9", ["'1e-9'", "from 0.01 to 100"]),
    ("--horizons", "1e9", ["'1e9'", "from 0.01 to 100"]),
    ("--horizons", "nan", ["'nan'", "from 0.01 to 100"]),
    ("--horizons", "two", ["'two'", "comma-separated numbers"]),
    ("--horizons", "1,1.0", ["'1,1.0'", "gives 1 twice", "each once"]),
    ("--horizons", "", ["''", "comma-separated numbers"]),
    ("--envs", ",,,", ["',,,'", "item 1 is empty", "environment names"]),
    ("--envs", "CartPole-v1, CartPole-v1", ["'CartPole-v1'", "twice"]),
])
def test_evaluate_refuses_a_bad_list(flag, value, fragments, tmp_path, capsys):
    line = _refused([*EVALUATE, flag, value, "--runs-dir", str(tmp_path / "runs")],
                    tmp_path, capsys)
    _has(line, f"{flag}: got ", *fragments)


ITEM = st.text(st.characters(blacklist_characters=",", blacklist_categories=("Cs",)),
               min_size=1, max_size=12).filter(lambda text: text.strip() != "")


@given(st.lists(ITEM, min_size=1, max_size=6, unique_by=str.strip))
def test_a_list_gives_its_items_stripped(items):
    assert split_list(",".join(items), "--envs", "names") == [item.strip() for item in items]


@given(st.lists(ITEM, min_size=1, max_size=5), st.data())
def test_an_empty_item_is_refused_in_one_line(items, data):
    where = data.draw(st.integers(0, len(items)))
    blank = data.draw(st.sampled_from(["", " ", "\t"]))
    text = ",".join([*items[:where], blank, *items[where:]])
    with pytest.raises(ConfigError) as refused:
        split_list(text, "--envs", "names")
    assert len(str(refused.value).splitlines()) == 1
    assert str(refused.value).startswith(f"--envs: got {text!r}, whose item ")


@given(st.lists(st.floats(MIN_HORIZON, MAX_HORIZON), min_size=1, max_size=5, unique=True))
def test_horizons_in_range_are_read_back_exactly(values):
    assert parse_horizons(",".join(map(repr, values))) == tuple(values)


@given(st.text(max_size=30))
def test_any_horizons_text_is_read_in_range_or_refused_in_one_line(text):
    try:
        horizons = parse_horizons(text)
    except ConfigError as error:
        assert len(str(error).splitlines()) == 1 and str(error).startswith("--horizons: got ")
    else:
        assert horizons and len(set(horizons)) == len(horizons)
        assert all(math.isfinite(h) and MIN_HORIZON <= h <= MAX_HORIZON for h in horizons)


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("command", ["train", "meta-train"])
@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_an_empty_config_file_is_refused(command, text, tmp_path, capsys):
    config = tmp_path / "empty.yaml"
    config.write_text(text)
    line = _refused([command, str(config), "--runs-dir", str(tmp_path / "runs")],
                    tmp_path, capsys)
    _has(line, str(config), "the config file is empty", "give no config file")


@pytest.mark.parametrize("command", ["meta-train", "sweep"])
def test_a_config_over_the_size_limit_is_refused_unread(command, tmp_path, capsys):
    config = tmp_path / "huge.yaml"
    config.write_text("name: x\n# " + "x" * MAX_CONFIG_BYTES + "\n")
    tic = time.perf_counter()
    line = _refused([command, str(config), "--runs-dir", str(tmp_path / "runs")],
                    tmp_path, capsys)
    assert time.perf_counter() - tic < 10
    _has(line, str(config), "1.0 MiB", "at most 1 MiB")


def test_an_unroll_longer_than_a_lifetime_is_refused(tmp_path, capsys):
    line = _refused(["meta-train", "configs/lpo_cartpole_metagrad.yaml", "--set",
                     "metagrad.unroll=1e8", "--runs-dir", str(tmp_path / "runs")],
                    tmp_path, capsys)
    _has(line, "metagrad.unroll: got 100000000", "at most metagrad.lifetime_max (16)")


def test_an_unroll_whose_rollouts_cannot_fit_in_memory_is_refused(tmp_path, capsys):
    line = _refused(["meta-train", "configs/lpo_cartpole_metagrad.yaml",
                     "--set", "metagrad.lifetime_max=2000000000", "--set", "metagrad.unroll=1e8",
                     "--runs-dir", str(tmp_path / "runs")], tmp_path, capsys)
    _has(line, "memory:", "GiB", "metagrad.unroll 100000000", "lower metagrad.unroll")


# --------------------------------------------------------------------------- sweeps


def _sweep(tmp_path: Path, grid: dict, seeds: list[int]) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "command": "train", "grid": grid,
                                    "seeds": seeds}))
    return path


def test_a_sweep_over_the_cell_cap_is_refused_at_once(tmp_path, capsys):
    grid = {"ppo.lr": [1e-4 * (i + 1) for i in range(1000)],
            "ppo.ent_coef": [1e-5 * i for i in range(1000)]}
    path = _sweep(tmp_path, grid, list(range(100)))
    tic = time.perf_counter()
    line = _refused(["sweep", str(path), "--runs-dir", str(tmp_path / "runs")], tmp_path,
                    capsys)
    assert time.perf_counter() - tic < 30
    _has(line, "100,000,000 cells (1000 x 1000 grid values x 100 seeds)",
         "at most 1,000 cells", "--allow-many-cells")


def test_allow_many_cells_lifts_the_cap(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("discovery.sweep.MAX_CELLS", 2)
    path = _sweep(tmp_path, {"ppo.lr": [1e-3, 3e-3]}, [0, 1])
    afile = tmp_path / "afile"
    afile.write_text("")
    line = _refused(["sweep", str(path), "--runs-dir", str(afile)], tmp_path, capsys)
    _has(line, "4 cells", "at most 2 cells")
    # Confirmed, the sweep goes on to its next check (here, the output folder is a file).
    line = _refused(["sweep", str(path), "--allow-many-cells", "--runs-dir", str(afile)],
                    tmp_path, capsys)
    _has(line, "--runs-dir", "is a file, not a folder")


def test_a_sweep_on_an_empty_base_config_is_refused(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text("")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": "base.yaml",
                                    "grid": {"ppo.lr": [1e-3, 3e-3]}}))
    line = _refused(["sweep", str(path), "--runs-dir", str(tmp_path / "runs")], tmp_path,
                    capsys)
    _has(line, "base.yaml: the config file is empty")


def test_a_sweep_path_that_is_a_folder_is_named_so(tmp_path, capsys):
    line = _refused(["sweep", str(tmp_path), "--runs-dir", str(tmp_path / "runs")], tmp_path,
                    capsys)
    _has(line, f"sweep: {tmp_path} is a folder; allowed: a YAML sweep file")


# --------------------------------------------------------------------------- reproduce


def test_reproduce_checks_results_before_any_piece_runs(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    tic = time.perf_counter()
    line = _refused(["reproduce", CLAIM, "--scale", "toy", "--results", str(afile)], tmp_path,
                    capsys)
    assert time.perf_counter() - tic < 10
    _has(line, f"--results: '{afile}'", "is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_reproduce_refuses_an_unwritable_results_folder(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = _refused(["reproduce", CLAIM, "--scale", "toy", "--results", str(locked)],
                        tmp_path, capsys)
        with pytest.raises(ConfigError, match="results: .* not writable"):
            reproduce.reproduce(CLAIM, "toy", locked, log=lambda line: None)
    finally:
        locked.chmod(0o700)
    _has(line, "--results", "not writable")


def _records(tmp_path: Path) -> Path:
    """Two committed records of the claim, in a results folder of their own."""
    results = tmp_path / "results"
    pieces = results / CLAIM / "cpu" / "pieces"
    pieces.mkdir(parents=True)
    for name in ("Breakout-MinAtar__ppo.json", "Breakout-MinAtar__dpo.json"):
        shutil.copy(REPO / "results" / CLAIM / "cpu" / "pieces" / name, pieces / name)
    return results


def _damage(text: str, how: str) -> str:
    record = json.loads(text)
    if how == "truncated":
        return text[: len(text) // 2]
    if how == "bare NaN":
        return text.replace("{", '{"x": NaN, ', 1)
    if how == "a list":
        return json.dumps([record])
    if how == "final_returns a string":
        return json.dumps({**record, "final_returns": "abc"})
    assert how == "no wall time"
    return json.dumps({k: v for k, v in record.items() if k != "wall_time_s"})


@pytest.mark.parametrize("how, fragments", [
    ("truncated", ["Breakout-MinAtar__dpo.json: unreadable"]),
    ("bare NaN", ["Breakout-MinAtar__dpo.json: unreadable", "NaN"]),
    ("a list", ["Breakout-MinAtar__dpo.json: a JSON list, not an object"]),
    ("final_returns a string", ["Breakout-MinAtar__dpo.json lacks", "ValueError"]),
    ("no wall time", ["Breakout-MinAtar__dpo.json lacks", "KeyError: 'wall_time_s'"]),
])
def test_report_refuses_a_damaged_record_naming_it(how, fragments, tmp_path, capsys):
    results = _records(tmp_path)
    record = results / CLAIM / "cpu" / "pieces" / "Breakout-MinAtar__dpo.json"
    record.write_text(_damage(record.read_text(), how))
    line = _refused(["reproduce", "--report", "--results", str(results),
                     "--page", str(tmp_path / "RESULTS.md")], tmp_path, capsys)
    _has(line, *fragments, "allowed: ")


def test_read_records_is_strict(tmp_path):
    results = _records(tmp_path)
    record = results / CLAIM / "cpu" / "pieces" / "Breakout-MinAtar__ppo.json"
    assert reproduce.read_records(results / CLAIM / "cpu")
    record.write_text(_damage(record.read_text(), "bare NaN"))
    with pytest.raises(ConfigError, match="non-strict JSON constant NaN"):
        reproduce.read_records(results / CLAIM / "cpu")


def test_report_refuses_a_page_that_is_a_folder(tmp_path, capsys):
    results = _records(tmp_path)
    line = _refused(["reproduce", "--report", "--results", str(results), "--page",
                     str(tmp_path)], tmp_path, capsys)
    _has(line, f"--page: '{tmp_path}'", "is a folder", "e.g. RESULTS.md")


# --------------------------------------------------------------------------- the zoo


def test_a_manifest_with_a_bare_nan_is_refused(tmp_path, capsys):
    entry = tmp_path / "entry"
    shutil.copytree(zoo.SHIPPED_ZOO / "lpo-cartpole-demo", entry)
    manifest = entry / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"provenance": {',
                                                     '"provenance": {"x": NaN, ', 1))
    with pytest.raises(zoo.ZooError, match="not valid JSON: non-strict JSON constant NaN"):
        zoo.load(entry)
    line = _refused(["evaluate", str(entry), "--runs-dir", str(tmp_path / "runs")], tmp_path,
                    capsys)
    _has(line, "manifest.json: not valid JSON: non-strict JSON constant NaN")


def test_export_refuses_the_name_of_a_shipped_entry_unless_asked(tmp_path, capsys):
    run, zoo_dir = tmp_path / "no-run", tmp_path / "zoo"
    line = _refused(["export", str(run), "--name", "lpo-cartpole-demo", "--zoo-dir",
                     str(zoo_dir)], tmp_path, capsys)
    _has(line, "name: 'lpo-cartpole-demo' is an entry the package ships", "would hide it",
         "--shadow")
    # Asked to shadow it, the export goes on to its next check (here: there is no run).
    line = _refused(["export", str(run), "--name", "lpo-cartpole-demo", "--zoo-dir",
                     str(zoo_dir), "--shadow"], tmp_path, capsys)
    _has(line, str(run))
    assert "ships" not in line


def test_export_refuses_a_zoo_dir_that_is_a_file(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    line = _refused(["export", str(tmp_path), "--name", "mine", "--zoo-dir", str(afile)],
                    tmp_path, capsys)
    _has(line, "--zoo-dir", "is a file, not a folder")
