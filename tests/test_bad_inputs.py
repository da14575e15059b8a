"""A corpus of bad inputs: each eval file is a one-line collection error naming file,
line and key; each bad command-line value is exit code 4 with a one-line message.
Never a traceback, never a hang. (test_spec.py and test_plugin.py hold the first cases;
these are the rest.)"""

from __future__ import annotations

import re

import pytest

LAUGHS = (
    "a: &a [x,x,x,x,x,x,x,x,x]\n"
    + "".join(f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdef", "bcdefg"))
    + "models: [m]\n"
)


def pattern(text: str) -> str:
    """An fnmatch pattern for `text` in which only `*` is a wildcard."""
    return re.sub(r"[\[\]?]", lambda m: f"[{m[0]}]", text)


# file stem -> (content, expected message after "evals/<stem>.yaml"; only * is a wildcard)
CORPUS: dict[str, tuple[str | bytes, str]] = {
    # syntax
    "tab_indent": (
        "models:\n\t- a\n",
        ":2: invalid YAML: found character '\\t' that cannot start any token",
    ),
    "unclosed_quote": ("models: ['a\n", ":2: invalid YAML: found unexpected end of stream"),
    "bad_indent": ("models:\n  - a\n - b\n", ":3: invalid YAML: expected <block end>, but found*"),
    "undefined_alias": ("models: [*nope]\n", ":1: invalid YAML: found undefined alias 'nope'"),
    "two_documents": (
        "models: [a]\n---\nmodels: [b]\n",
        ":2: invalid YAML: but found another document",
    ),
    "not_utf8": (b"models: [\xff\xfe]\n", ": cannot read: 'utf-8' codec can't decode byte 0xff*"),
    "deep_nesting": ("models: " + "[" * 3000 + "]" * 3000 + "\n", ":1: invalid YAML: *nesting*"),
    "alias_bomb": (LAUGHS, ":1: *: more than 110000 values (do YAML aliases expand too far?)"),
    "list_as_key": (
        "? [a]\n: 1\nmodels: [a]\n",
        ":1: a key must be a plain name, not a list or mapping",
    ),
    # wrong types
    "models_number": ("models: 5\n", ":1: models: must be a list of model names, got a number"),
    "seeds_boolean": (
        "models: [a]\nseeds: true\n",
        ":2: seeds: expected a count, a range 'a-b' or a list, got True",
    ),
    "seeds_date": (
        "models: [a]\nseeds: 2024-01-01\n",
        ":2: seeds: expected a count, a range 'a-b' or a list, got date",
    ),
    "steps_fraction": (
        "models: [a]\nsteps: 2.5\n",
        ":2: steps: must be a whole number of model calls, got a number",
    ),
    "observation_yes": (
        "models: [a]\nobservation: yes\n",
        ":2: observation: must be a mapping, got a boolean",
    ),
    "size_word": (
        "models: [a]\nobservation: {image: {size: big}}\n",
        ":2: observation.image.size: must be a whole number, got the string 'big'",
    ),
    "size_crafter_cannot_draw": (  # 16 px: 1 px tiles, the counts 0 px: crafter raises
        "models: [a]\nobservation: {image: {size: 16}}\n",
        ":2: observation.image.size: must be from 18 to 1024 pixels, got 16",
    ),
    "negative_goal": (
        "models: [a]\nexpect: {min_achievements: -1}\n",
        ":2: expect.min_achievements: must be from 0 to 22, got -1",
    ),
    "instructions_list": (
        "instructions: [1]\nmodels: [a]\n",
        ":1: instructions: must be a string, got a list",
    ),
    "two_names_one_model": (
        "models: [{a: {}, b: {}}]\n",
        ":1: models[0]: a model given as a mapping has one key, its name",
    ),
    "empty_xfail": (
        "models: [{a: {xfail: ''}}]\n",
        ":1: models[0].a.xfail: must be a reason, a non-empty string",
    ),
    # unknown keys
    "unknown_top_key": ("seed: 3\nmodels: [a]\n", ":1: seed: unknown key (did you mean 'seeds'?)"),
    "unknown_nested_key": (
        "models: [a]\nobservation: {image: {colour: red}}\n",
        ":2: observation.image.colour: unknown key; known keys: detail, size",
    ),
    # empty files
    "only_comments": (
        "# nothing yet\n",
        ": empty eval file: expected a mapping with a 'models' key",
    ),
    "only_separator": ("---\n", ": empty eval file: expected a mapping with a 'models' key"),
    "only_null": ("~\n", ": empty eval file: expected a mapping with a 'models' key"),
    "only_blank": ("  \n\n", ": empty eval file: expected a mapping with a 'models' key"),
    # huge seed lists
    "seed_range_huge": (
        "models: [a]\nseeds: 0-1000000\n",
        ":2: seeds: at most 100000 seeds, got 1000001",
    ),
    "seed_list_huge": (
        "models: [a]\nseeds: [" + ",".join(map(str, range(100_001))) + "]\n",
        ":2: seeds: at most 100000 seeds, got 100001",
    ),
    "seed_too_big": (
        "models: [a]\nseeds: [1099511627776]\n",
        ":2: seeds: a seed must be a whole number from 0 to 2**31-1, got 1099511627776",
    ),
    # path-like names
    "model_abs_path": (
        "models: ['/etc/passwd']\n",
        ":1: models[0]: invalid model name '/etc/passwd'*",
    ),
    "model_windows_path": ("models: ['C:\\x\\y']\n", ":1: models[0]: invalid model name*"),
    "model_double_slash": (
        "models: ['local//random']\n",
        ":1: models[0]: invalid model name 'local//random'*",
    ),
    "name_parent_dir": (
        "name: ../x\nmodels: [a]\n",
        ":1: name: must be a short name of letters, digits*, got '../x'",
    ),
    "name_with_slash": (
        "name: a/b\nmodels: [a]\n",
        ":1: name: must be a short name of letters, digits*, got 'a/b'",
    ),
    "model_with_space": ("models: ['gpt 4o']\n", ":1: models[0]: invalid model name 'gpt 4o'*"),
}


def test_every_bad_eval_file_is_one_line_naming_file_line_and_key(pytester):
    for stem, (content, _) in CORPUS.items():
        path = pytester.path / "evals" / f"{stem}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "evals", timeout=120)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    lines = result.stdout.lines
    assert "Traceback" not in result.stdout.str() and not result.stderr.lines
    seen = set()
    for i, line in enumerate(lines):
        match = re.fullmatch(r"_+ ERROR collecting evals/(\w+)\.yaml _+", line)
        if match:
            stem = match[1]
            seen.add(stem)
            message, after = lines[i + 1], lines[i + 2]
            expected = f"evals/{stem}.yaml" + CORPUS[stem][1]
            assert re.match(r"[_=]", after), f"{stem}: more than one line: {lines[i + 1 : i + 4]}"
            pytest.LineMatcher([message]).fnmatch_lines([pattern(expected)])
    assert seen == set(CORPUS)
    result.stdout.fnmatch_lines([f"*Interrupted: {len(CORPUS)} errors during collection*"])


def test_two_eval_files_with_one_name_are_refused_naming_both(pytester):
    """They would write the same traces, GIFs and result ids (and corrupt them when run
    together): the second file is a collection error naming both files and lines; a
    name taken from a file's stem counts, and so does one that differs only in case or a
    trailing `_` (the same directory on a case-blind disk)."""
    pytester.makefile(
        ".yaml",
        **{
            "evals/a": "name: smoke\nmodels: [local/random]\n",
            "evals/b": "# the same eval?\nname: smoke\nmodels: [local/random]\n",
            "evals/c": "models: [local/random]\nname: SMOKE_\n",
            "evals/sub/smoke": "models: [local/random]\n",
            "evals/d": "name: other\nmodels: [local/random]\n",
        },
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q", "evals")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    tail = (
        "is already the name of evals/a.yaml:1; two eval files with one name write the "
        "same traces, GIFs and results: give each its own name"
    )
    result.stdout.fnmatch_lines(
        [
            f"evals/b.yaml:2: name: 'smoke' {tail}",
            f"evals/c.yaml:2: name: 'SMOKE_' {tail}",
            f"evals/sub/smoke.yaml:1: name: 'smoke' (the file's name) {tail}",
        ],
        consecutive=False,
    )
    assert "Interrupted: 3 errors during collection" in result.stdout.str()


BAD_OPTIONS = [
    (["--max-retries", "-1"], "--max-retries: expected a whole number from 0 to 100, got '-1'"),
    (
        ["--max-retries", "three"],
        "--max-retries: expected a whole number from 0 to 100, got 'three'",
    ),
    (["--max-retries", "1000"], "--max-retries: expected a whole number from 0 to 100, got '1000'"),
    (  # the old name of --requests-per-model still works; the message says the new one
        ["--max-concurrency", "0"],
        "--requests-per-model: expected a whole number from 1 to 1000, got '0'",
    ),
    (
        ["--episodes-per-process", "0"],
        "--episodes-per-process: expected a whole number from 1 to 1000, got '0'",
    ),
    (
        ["--fail-on-error", "1.5"],
        "--fail-on-error: expected a share from 0 to 1, like 0.05, got '1.5'",
    ),
    (
        ["--fail-on-error", "nan"],
        "--fail-on-error: expected a share from 0 to 1, like 0.05, got 'nan'",
    ),
    (
        ["--fail-on-error", "5%"],
        "--fail-on-error: expected a share from 0 to 1, like 0.05, got '5%'",
    ),
    (["--max-cost", "-2"], "--max-cost: expected a number of USD, like 2.50, got '-2'"),
    (["--max-cost", "inf"], "--max-cost: expected a number of USD, like 2.50, got 'inf'"),
    (["--max-tokens", "1e6"], "--max-tokens: expected a whole number of tokens, got '1e6'"),
    (["--max-tokens", "0"], "--max-tokens: expected a whole number of tokens, got '0'"),
    (["--step-deadline", "0"], "--step-deadline: expected a positive number of seconds, got '0'"),
    (
        ["--request-timeout", "inf"],
        "--request-timeout: expected a positive number of seconds, got 'inf'",
    ),
    (
        ["--request-timeout", "soon"],
        "--request-timeout: expected a positive number of seconds, got 'soon'",
    ),
    (["--seeds", "0-1000000"], "--seeds: at most 100000 seeds, got 1000001"),
    (["--seeds", "a,b"], "--seeds: expected a count, a range 'a-b' or a list 'a,b,c', got 'a,b'"),
    (["--steps", "0"], "--steps: expected a whole number from 1 to 10000, got '0'"),
    (["--model", "a,a"], "--model: a model is named twice: a, a"),
    (["--model", "/etc/passwd"], "--model: invalid model name '/etc/passwd'*"),
    (
        ["-o", "crafter_max_retries=lots"],
        "--max-retries: expected a whole number from 0 to 100, got 'lots'",
    ),
]


@pytest.mark.parametrize("args, message", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_command_line_values_exit_4_with_one_line(pytester, args, message):
    pytester.makefile(".yaml", **{"evals/ok": "models: [local/random]\nsteps: 1\n"})
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "evals", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.lines
    pytest.LineMatcher(errors).fnmatch_lines([pattern(f"ERROR: {message}")])
