"""YAML-level problems of experiment files: syntax, safety limits, tags, keys, YAML 1.2 scalars."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaoskit.errors import SpecError
from chaoskit.spec.loader import MAX_BYTES, load_experiment, load_experiment_text

SPECS = Path(__file__).parent / "specs"


def problems_of(path: Path) -> list[str]:
    """Rendered problems without the path prefix: 'LINE:COL: what; what to do'."""
    with pytest.raises(SpecError) as caught:
        load_experiment(path)
    prefix = f"{path}:"
    lines = caught.value.render().splitlines()
    assert all(line.startswith(prefix) for line in lines)
    return [line[len(prefix):] for line in lines]


def invalid(name: str) -> list[str]:
    return problems_of(SPECS / "invalid" / name)


def test_yaml_syntax_error_points_at_the_place_and_where_the_list_started() -> None:
    assert invalid("syntax_error.yaml") == [
        ("6:8: YAML syntax error: expected ',' or ']', but got ':' (while parsing a flow "
        "sequence that starts at 5:9); fix the YAML syntax at this place")]


def test_tabs_in_indentation_are_reported_on_every_line() -> None:
    hint = "a tab is used for indentation; indent with spaces only (YAML does not allow tabs there)"
    assert invalid("tabs.yaml") == [f"4:1: {hint}", f"5:1: {hint}"]


def test_duplicate_keys_are_errors_naming_the_first_line() -> None:
    assert invalid("duplicate_keys.yaml") == [
        "6:3: duplicate key 'owner'; it is already set on line 5; keep one of them"]


def test_unknown_yaml_tags_are_refused() -> None:
    hint = "remove the tag; chaoskit/v1 uses plain YAML values only"
    assert invalid("unknown_tag.yaml") == [
        f"5:10: unknown YAML tag '!vault'; {hint}",
        f"6:16: unknown YAML tag '!!python/object:os.system'; {hint}"]


def test_empty_file() -> None:
    assert invalid("empty.yaml") == [
        "1:1: the file is empty; start with 'apiVersion: chaoskit/v1' and 'kind: Experiment'"]


def test_comment_only_file_counts_as_empty() -> None:
    with pytest.raises(SpecError, match="the file is empty"):
        load_experiment_text("# nothing yet\n", "e.yaml")


def test_file_that_is_not_a_mapping() -> None:
    assert invalid("not_a_mapping.yaml") == [
        ("1:1: the file is not a mapping (key: value lines); an experiment starts with "
        "'apiVersion: chaoskit/v1' and 'kind: Experiment'")]


def test_binary_file_is_refused_at_its_first_nul_byte(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"apiVersion: chaoskit/v1\nkind\x00\x01\x02\xff\n")
    assert problems_of(path) == [
        "2:5: the file is binary (it contains NUL bytes); pass a YAML text file"]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("apiVersion: chaoskit/v1\nkind: Exp\u00e9riment\n".encode("latin-1"))
    assert problems_of(path) == ["2:10: the file is not UTF-8 text; save it as UTF-8"]


def test_deeply_nested_file_is_refused_where_the_limit_is_crossed() -> None:
    # Block mappings l0..l39 under target.scope.selectors: the root, target, scope and
    # selectors mappings are levels 1-4, so key l28 (line 36, column 63) is level 33.
    assert invalid("deeply_nested.yaml") == [
        ("36:63: nesting is deeper than 32 levels; an experiment nests only a few levels; "
         "flatten the structure")]


def test_deep_brackets_are_refused_before_the_scanner_sees_them() -> None:
    text = "apiVersion: chaoskit/v1\nmetadata: " + "[" * 5000 + "\n"
    with pytest.raises(SpecError) as caught:
        load_experiment_text(text, "run.yaml")
    # 'metadata: ' ends at column 10; the 33rd '[' is at 11 + 32
    assert caught.value.render() == (
        "run.yaml:2:43: nesting is deeper than 32 levels; an experiment nests only a few "
        "levels; flatten the structure")


def test_brackets_inside_quoted_strings_do_not_count_as_nesting() -> None:
    text = ("apiVersion: chaoskit/v1\nkind: Experiment\nmetadata:\n  name: quoted\n"
            f"  description: \"{'[' * 40}\"\n  owner: '{'{' * 40}'\n")
    experiment = load_experiment_text(text, "q.yaml")
    assert experiment.metadata.description == "[" * 40


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"apiVersion: chaoskit/v1\n" + b"# padding\n" * (MAX_BYTES // 10 + 1))
    assert problems_of(path) == [
        ("1:1: the file is larger than 64 KiB; an experiment is a small YAML file; "
        "check you passed the right file")]


def test_huge_text_is_refused_too() -> None:
    with pytest.raises(SpecError, match="larger than 64 KiB"):
        load_experiment_text("a: b\n" * (MAX_BYTES // 5 + 1), "huge.yaml")


def test_alias_bomb_is_refused_by_the_alias_bound_not_by_a_timeout() -> None:
    """What is asserted is the bound: the composer counts what each alias would expand to and
    stops at line 10, long before the 9**9 strings exist. Its speed is not asserted here."""
    assert invalid("alias_bomb.yaml") == [
        ("10:8: aliases would expand to more than 10000 nodes (an alias bomb?); "
        "use fewer nested '*' aliases")]


def test_too_many_aliases_are_refused_even_when_each_is_small() -> None:
    text = "x: &x 1\nlist: [" + ", ".join(["*x"] * 101) + "]\n"
    with pytest.raises(SpecError) as caught:
        load_experiment_text(text, "many.yaml")
    assert [p.message for p in caught.value.problems] == ["more than 100 aliases"]
    # the 101st '*x' after 'list: [' and 100 times '*x, ' is the one refused
    assert (caught.value.problems[0].line, caught.value.problems[0].column) == (2, 7 + 400 + 1)


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        load_experiment_text("a: &a [1, *a]\n", "loop.yaml")
    assert caught.value.render() == (
        "loop.yaml:1:11: alias '*a' refers to a node that contains it; remove the recursive alias")


def test_no_stays_a_string_under_yaml_1_2() -> None:
    experiment = load_experiment(SPECS / "valid" / "norway.yaml")
    assert experiment.metadata.owner == "NO"
    assert experiment.metadata.tags == ["NO", "yes", "off"]


def test_more_than_one_document_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        load_experiment_text("apiVersion: chaoskit/v1\n---\nkind: Experiment\n", "two.yaml")
    assert caught.value.render() == (
        "two.yaml:2:1: the file holds more than one YAML document; "
        "put one experiment per file (remove the '---' line)")


def test_unquoted_condition_starting_with_gt_gets_a_quoting_hint() -> None:
    text = "apiVersion: chaoskit/v1\nguardrails:\n  - abort_when: >= 5%\n"
    with pytest.raises(SpecError) as caught:
        load_experiment_text(text, "gt.yaml")
    assert caught.value.problems[0].line == 3
    assert caught.value.problems[0].hint == (
        "quote values starting with '>' or '|', e.g. expect: \">= 99.9%\"")


def test_merge_keys_fill_in_without_overriding() -> None:
    text = ("apiVersion: chaoskit/v1\nkind: Experiment\nbase: &base {owner: sre, name: x}\n"
            "metadata:\n  <<: *base\n  name: merged\n")
    with pytest.raises(SpecError) as caught:  # 'base' is not an experiment key
        load_experiment_text(text, "m.yaml")
    assert [p.render() for p in caught.value.problems] == [
        "m.yaml:3:1: unknown key 'base'; did you mean 'phases'?"]
    experiment = load_experiment_text(text.replace("base:", "# base:", 1).replace(
        "  <<: *base\n", "  <<: {owner: sre, name: x}\n"), "m.yaml")
    assert (experiment.metadata.name, experiment.metadata.owner) == ("merged", "sre")


def test_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the file"):
        load_experiment(tmp_path / "nope.yaml")


def test_unknown_tag_on_a_key_is_refused_too() -> None:
    with pytest.raises(SpecError) as caught:
        load_experiment_text("apiVersion: chaoskit/v1\n!secret kind: Experiment\n", "k.yaml")
    assert caught.value.render().splitlines() == [
        "k.yaml:1:1: 'metadata' is missing; add 'metadata: ...'",
        ("k.yaml:2:1: unknown YAML tag '!secret'; remove the tag; "
        "chaoskit/v1 uses plain YAML values only")]


def test_reused_anchor_is_legal_and_silent(recwarn: pytest.WarningsRecorder) -> None:
    text = ("apiVersion: chaoskit/v1\nkind: Experiment\nmetadata:\n  name: &n reuse\n"
            "  owner: &n sre\n  description: *n\n")
    assert load_experiment_text(text, "r.yaml").metadata.description == "sre"
    assert len(recwarn) == 0


def test_aliases_cannot_stack_nesting_beyond_the_depth_limit() -> None:
    """Each line nests 30 levels, within the limit; the alias on line 4 would put a0's
    30 levels under 30 more, which is refused there instead of building a 700-deep tree."""
    lines = ["apiVersion: chaoskit/v1", "kind: Experiment", "a0: &a0 " + "[" * 30 + "]" * 30]
    lines += [f"a{k}: &a{k} " + "[" * 29 + f"*a{k - 1}" + "]" * 29 for k in range(1, 25)]
    with pytest.raises(SpecError) as caught:
        load_experiment_text("\n".join(lines) + "\n", "chain.yaml")
    assert caught.value.render() == (
        "chain.yaml:4:38: alias '*a0' nests deeper than 32 levels here; "
        "use the alias less deep, or write the values out")
