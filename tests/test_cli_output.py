"""What the command line prints: error lines as plain, unwrapped text; hints and help that name
only commands, options and config tables that exist; help readable at 80 columns; progress lines
in logs; a corrupt checkpoint's message without torch's unsafe advice.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

import motionxfer
from motionxfer.checkpoint import read_checkpoint
from motionxfer.cli import app, hoist_global_flags
from motionxfer.cli.app import handle_errors, progress_bar, state
from motionxfer.errors import BadInput, CheckpointError
from motionxfer.progress import ProgressLines
from motionxfer.settings import STAGE_TABLES

runner = CliRunner()
LIBRARY = Path(motionxfer.__file__).parent


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, hoist_global_flags(list(args)), env=env)


def failing_app(message: str, hint: str) -> typer.Typer:
    """A one-command app whose command raises BadInput(message, hint) through handle_errors."""
    tiny = typer.Typer()

    @tiny.command()
    @handle_errors
    def fail() -> None:
        raise BadInput(message, hint=hint)

    return tiny


# --- error lines --------------------------------------------------------------------------------

def test_error_text_in_square_brackets_is_printed_as_it_is() -> None:
    result = runner.invoke(failing_app(
        "min_visibility = 2 in [normalize] of config.toml must be in [0, 1]",
        "fix them in [normalize] of config.toml; [bold]not markup[/bold]"))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: min_visibility = 2 in [normalize] of config.toml must be in [0, 1]",
        "fix: fix them in [normalize] of config.toml; [bold]not markup[/bold]",
    ]


def test_a_long_error_stays_one_line_when_redirected() -> None:
    message = "the video " + "/very/long/folder" * 12 + "/clip.mp4 cannot be decoded"
    hint = "re-encode it: ffmpeg -i " + "x" * 150 + ".mp4 -c:v libx264 fixed.mp4"
    result = runner.invoke(failing_app(message, hint), env={"COLUMNS": "80"})
    assert result.stderr.splitlines() == [f"error: {message}", f"fix: {hint}"]


# --- hints and help name what exists ------------------------------------------------------------

def command_tree() -> dict[str, typer.core.TyperCommand]:
    """Every command of the CLI by its full name ('transfer', 'models fetch'), and '' for the app."""
    root = typer.main.get_command(app)
    commands = {"": root}
    context = typer.Context(root)

    def walk(group, prefix: str) -> None:
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            commands[f"{prefix}{name}"] = command
            if hasattr(command, "list_commands"):
                walk(command, f"{prefix}{name} ")

    walk(root, "")
    return commands


COMMANDS = command_tree()
GLOBAL_OPTIONS = {opt for param in COMMANDS[""].params for opt in param.opts + param.secondary_opts}


def options_of(command) -> set[str]:
    return {opt for param in command.params for opt in param.opts + param.secondary_opts
            } | GLOBAL_OPTIONS | {"--help"}


ALL_OPTIONS = set().union(*(options_of(command) for command in COMMANDS.values()))
TABLES = {name for name, _ in STAGE_TABLES}
# Words that follow "motionxfer" in prose rather than naming a command.
PROSE_AFTER_NAME = {"repository", "knows", "if", "sets", "does", "checkpoint", "project",
                    "version"}
PROGRAM = re.compile(r"\b(motionxfer|torchrun|ffmpeg|pip|OpenPose|DeepLabCut)\b"
                     r"((?: [a-z][a-z0-9-]*){0,2})")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
TABLE = re.compile(r"\[([a-z_]+)\]")


def wrong_names(text: str) -> list[str]:
    """The commands, options and config tables that `text` names but the CLI does not have.

    `motionxfer <command>` must be a command; an option after it (up to the next , ; or
    parenthesis) must be one of that command's; any other option one of some command's. Options
    after another program's name (torchrun, OpenPose, ...) are that program's, up to the next
    `motionxfer`. `[name]` must be a table of config.toml."""
    wrong: list[str] = []
    foreign = False  # the last program named so far is not motionxfer
    for clause in re.split(r"[,;()]| or ", text):
        owner: set[str] | None = None if foreign else ALL_OPTIONS
        position = 0
        for match in PROGRAM.finditer(clause):
            _check_options(clause[position:match.start()], owner, wrong)
            position = match.end()
            foreign = match.group(1) != "motionxfer"
            words = match.group(2).split()
            if foreign:
                owner = None
            elif not words or words[0] in PROSE_AFTER_NAME:
                owner = ALL_OPTIONS
            elif words[0] not in COMMANDS:
                wrong.append(f"motionxfer {words[0]}")
                owner = ALL_OPTIONS
            else:
                name = words[0]
                if len(words) > 1 and f"{name} {words[1]}" in COMMANDS:
                    name = f"{name} {words[1]}"
                elif hasattr(COMMANDS[name], "list_commands"):
                    wrong.append(f"motionxfer {match.group(2).strip()}")
                owner = options_of(COMMANDS[name])
        _check_options(clause[position:], owner, wrong)
    wrong += [f"[{table}]" for table in TABLE.findall(text) if table not in TABLES]
    return wrong


def _check_options(text: str, owner: set[str] | None, wrong: list[str]) -> None:
    if owner is not None:
        wrong += [option for option in OPTION.findall(text) if option not in owner]


def hint_texts() -> list[tuple[str, str]]:
    """(where, text) of every string passed as hint= in the library; an f-string's fields become
    '{}'."""
    hints = []
    for path in sorted(LIBRARY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "hint":
                hints.append((f"{path.relative_to(LIBRARY.parent)}:{node.value.lineno}",
                              _text_of(node.value)))
    return hints


def _text_of(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text_of(part) if isinstance(part, ast.Constant) else "{}"
                       for part in node.values)
    if isinstance(node, ast.BinOp):
        return _text_of(node.left) + _text_of(node.right)
    if isinstance(node, ast.IfExp):
        return _text_of(node.body) + " " + _text_of(node.orelse)
    return "{}"


def test_the_name_checker_catches_what_does_not_exist() -> None:
    assert wrong_names("fill gaps (motionxfer smooth-poses), or lower --min-visibility") == [
        "motionxfer smooth-poses", "--min-visibility"]
    assert wrong_names("fix it in the [normalization] table") == ["[normalization]"]
    assert wrong_names("motionxfer transfer ./me a.mp4 --holdout") == ["--holdout"]
    assert wrong_names("motionxfer models fetch vgg16, or pass --no-perceptual") == []
    assert wrong_names("torchrun --nproc-per-node 2 -m motionxfer train-target P --resume") == []
    assert wrong_names("run OpenPose once, with one --model_pose") == []
    assert wrong_names("pass --batch_size") == ["--batch_size"]


def test_every_hint_names_real_commands_options_and_tables() -> None:
    hints = hint_texts()
    assert len(hints) > 100  # the collector found the library's hints
    wrong = [f"{where}: {names}" for where, text in hints if (names := wrong_names(text))]
    assert wrong == []


def test_every_help_text_names_real_commands_options_and_tables() -> None:
    wrong = []
    for name, command in COMMANDS.items():
        texts = [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]
        wrong += [f"{name or 'motionxfer'}: {names}" for text in texts if (names := wrong_names(text))]
    assert wrong == []


# --- help at 80 columns -------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_is_readable_at_80_columns(name: str) -> None:
    result = invoke(*name.split(), "--help", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.output
    for option in sorted(options_of(COMMANDS[name]) - (GLOBAL_OPTIONS if name else set())):
        if option.startswith("--"):
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), option
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "<bool>" not in text and "BOOLEAN" not in text  # on/off flags take no value
    assert "\\[" not in text  # no markup escapes left in the help strings


@pytest.mark.parametrize("name", [name for name, command in COMMANDS.items()
                                  if hasattr(command, "list_commands")])
def test_group_help_lists_each_command_with_its_whole_first_sentence(name: str) -> None:
    result = invoke(*name.split(), "--help", env={"COLUMNS": "80"})
    text = " ".join(result.output.split())
    group = COMMANDS[name]
    for sub in group.list_commands(typer.Context(group)):
        first = " ".join(group.get_command(typer.Context(group), sub).help.split("\n\n")[0].split())
        assert f"{sub} {first}" in text
    assert "..." not in result.output.split("Commands:")[1]


# --- progress in logs ---------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_at_most_every_interval_and_the_last() -> None:
    lines: list[str] = []
    clock = Clock()
    report = ProgressLines(lines.append, interval=5.0, clock=clock)
    report("poses", 0, 640, "0.0 frames/s")  # the start: remembered, not printed
    for done in range(1, 161):
        clock.now += 1 / 32  # 32 frames a second (exact in binary)
        report("poses", done, 640, "32.0 frames/s")
    assert lines == ["poses 160/640 32.0 frames/s ETA 0:00:15"]
    clock.now += 1.0
    report("poses", 192, 640, "32.0 frames/s")  # 1 s later: too soon
    assert len(lines) == 1
    clock.now += 14.0
    report("poses", 640, 640, "32.0 frames/s")
    report("poses", 640, 640, "32.0 frames/s")  # a meter's finish() repeats the last count
    assert lines[1:] == ["poses 640/640 32.0 frames/s"]


def test_progress_lines_without_a_total() -> None:
    lines: list[str] = []
    clock = Clock()
    report = ProgressLines(lines.append, interval=0.0, clock=clock)
    report("download vgg16.pth", 0, None, "")
    clock.now += 2.0
    report("download vgg16.pth", 5_000_000, None, "5 MB")
    assert lines == ["download vgg16.pth 5000000 5 MB"]


def test_progress_goes_to_stderr_when_it_is_not_a_terminal(capsys, monkeypatch) -> None:
    monkeypatch.setenv("MOTIONXFER_PROGRESS_INTERVAL", "0")
    monkeypatch.setattr(state, "quiet", False)
    with progress_bar() as progress:
        assert progress is not None
        progress("poses", 0, 600, "")
        progress("poses", 600, 600, "35.2 frames/s")
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["poses 600/600 35.2 frames/s"]
    assert captured.out == ""


def test_quiet_silences_progress(capsys, monkeypatch) -> None:
    monkeypatch.setenv("MOTIONXFER_PROGRESS_INTERVAL", "0")
    monkeypatch.setattr(state, "quiet", True)
    with progress_bar() as progress:
        assert progress is None
    assert capsys.readouterr().err == ""


def test_a_bad_progress_interval_is_an_error(monkeypatch) -> None:
    monkeypatch.setenv("MOTIONXFER_PROGRESS_INTERVAL", "soon")
    monkeypatch.setattr(state, "quiet", False)
    with pytest.raises(BadInput, match="MOTIONXFER_PROGRESS_INTERVAL"), progress_bar():
        pass


# --- a checkpoint that only an unsafe load could read --------------------------------------------

class Payload:
    """Not a tensor or a plain value: torch's safe load refuses it."""


def test_an_unsafe_checkpoint_gets_no_advice_to_load_it_unsafely(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"format": "motionxfer-checkpoint", "payload": Payload()}, path)
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    text = f"{caught.value.message}\n{caught.value.hint}"
    assert "Payload" in caught.value.message  # torch's informative line: what it refused
    for advice in ("weights_only", "safe_globals", "still be loaded", "trust", "\x1b"):
        assert advice not in text, text
    assert "\n" not in caught.value.message
