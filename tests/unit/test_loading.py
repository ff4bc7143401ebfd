"""Finding what a command names: built-ins by name, scenario files by path, one paragraph per error."""

import subprocess
import sys
import textwrap

import pytest

from personae import Experiment, Scenario
from personae.errors import ConfigError, ScenarioFileError
from personae.loading import load_target, parse_assignments


def write(folder, name, body):
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def personae(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_a_file_named_like_a_builtin_never_shadows_it(tmp_path, monkeypatch):
    write(tmp_path, "counseling", "raise SystemExit('this file must not run')\n")
    monkeypatch.chdir(tmp_path)
    loaded = load_target("counseling")
    assert isinstance(loaded, Scenario) and loaded.name == "counseling"


def test_a_file_without_py_is_not_loaded(tmp_path, monkeypatch):
    write(tmp_path, "mine", "x = 1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ScenarioFileError,
        match=r"\./mine is a file, but scenario files end in \.py: did you mean \./mine\.py",
    ):
        load_target("mine")


def test_a_name_whose_py_file_exists_suggests_it(tmp_path, monkeypatch):
    write(tmp_path, "mine.py", "x = 1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioFileError, match=r"did you mean \./mine\.py\? Scenario files end"):
        load_target("mine")


def test_unknown_builtin_lists_builtins_and_suggests_the_closest():
    with pytest.raises(ConfigError) as caught:
        load_target("debat")
    message = str(caught.value)
    assert "no built-in scenario 'debat'; did you mean 'debate'?" in message
    assert "counseling, drift, debate, group, student-cohort" in message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("import sys\n\nsys.exit(0)\n", "called sys.exit(0) at line 3 while loading; a scenario"),
        ("raise SystemExit\n", "called sys.exit() at line 1 while loading"),
        ("x = 1\nraise KeyboardInterrupt\n", "raised KeyboardInterrupt at line 2 while loading"),
        (
            "x = 1\n\nraise RuntimeError('boom')\n",
            "raised RuntimeError at line 3 while loading: boom",
        ),
        (
            "from personae import Persona\np = Persona(name='A', big_five={'N': 9})\n",
            "raised ValidationError at line 2 while loading: big_five",
        ),
    ],
)
def test_scenario_file_errors_keep_file_and_line(tmp_path, body, fragment):
    path = write(tmp_path, "scenario.py", body)
    with pytest.raises(ScenarioFileError) as caught:
        load_target(str(path))
    message = str(caught.value)
    assert message.startswith(str(path)) and fragment in message and "\n" not in message


def test_a_scenario_file_loads_its_experiment(tmp_path):
    path = write(
        tmp_path,
        "exp.py",
        """
        from personae import Experiment, Persona, Scenario

        scenario = Scenario(name="s", agents=(Persona(name="A"), Persona(name="B")))
        experiment = Experiment(scenario=scenario, replicates=2)
        """,
    )
    loaded = load_target(str(path))
    assert isinstance(loaded, Experiment) and loaded.replicates == 2


def test_a_key_given_twice_is_refused():
    with pytest.raises(ConfigError, match="'max_turns' is given twice"):
        parse_assignments(["max_turns=4", "max_turns=6"], multi=True)
    assert parse_assignments(["max_turns=4,6", "client=maya"], multi=True) == {
        "max_turns": [4, 6],
        "client": ["maya"],
    }


def test_cli_refuses_bad_values_before_any_episode(tmp_path):
    db = tmp_path / "x.db"
    topic = personae("run", "debate", "--set", "topic=nonexistent", "--db", str(db))
    repeated = personae("run", "counseling", "--grid", "max_turns=4,4", "--db", str(db))
    exits = write(tmp_path, "exits.py", "import sys\nsys.exit(0)\n")
    exiting = personae("run", str(exits), "--db", str(db))
    for result in (topic, repeated, exiting):
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
    assert "debate topic" in topic.stderr and "t01, t02" in topic.stderr
    assert "repeats the value 4" in repeated.stderr
    assert "called sys.exit(0)" in exiting.stderr
    assert not db.exists()
