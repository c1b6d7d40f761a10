"""Immediate variables per batch (`variables: batch`): one value for every image of a batch, drawn from its
first seed, while every other choice stays per image; per image (the default) unchanged."""
from __future__ import annotations

import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib_orchestrator import SAMPLE_LORAS
from lib_orchestrator.cli import main
from lib_orchestrator.errors import OrchestratorError, TemplateError
from lib_orchestrator.selection import Rules, load_rules
from lib_orchestrator.selection.rules import RulesError
from lib_orchestrator.wildcards import PromptEngine
from lib_orchestrator.wildcards.batch_vars import BatchExpander, batch_template, fix_variables, literal

WHO = ["Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi"]
FIRST = 1000
SEEDS = range(FIRST, FIRST + 40)


@pytest.fixture
def engine(make_wildcards):
    return PromptEngine([make_wildcards({
        "who.txt": "\n".join(WHO) + "\n",
        "color.txt": "red\nblue\ngreen\nteal\nplum\n",
        "tpl.txt": "${c?=!__who__}<${c}> in __color__\n",
        "scene.txt": "<${who}> by the __color__ sea\n",
        "cast.txt": "${c=!__who__}<${c}>\n",
        "odd.txt": "a\\\nb\\\n",  # lines ending in a backslash: a value the template syntax cannot write
        "special.txt": "\\{x\\} \\| \\$y \\#z 100\\% \\_\\_w\\_\\_ a/b\n",
    })])


def batch(engine, template, seeds=SEEDS):
    expand = BatchExpander(engine, seeds[0])
    return [expand(template, s) for s in seeds]


def per_image(engine, template, seeds=SEEDS):
    return [engine.prompt(template, s) for s in seeds]


def bracketed(prompts):
    """What each prompt holds between < and >: where the templates below show their variable."""
    return [re.findall(r"<([^<>]*)>", p) for p in prompts]


def test_every_image_of_a_batch_shares_the_immediate_value_while_other_wildcards_vary(engine):
    template = "${c=!__who__}<${c}> and <${c}> in __color__"
    prompts = batch(engine, template)
    values = {v for pair in bracketed(prompts) for v in pair}
    assert len(values) == 1 and values <= set(WHO)
    colors = {p.rsplit(" ", 1)[1] for p in prompts}
    assert len(colors) > 2  # 40 images of 5 colours: a shared colour would be a bug


def test_per_image_mode_draws_the_variable_from_each_images_seed(engine):
    template = "${c=!__who__}<${c}> and <${c}> in __color__"
    pairs = bracketed(per_image(engine, template))
    assert all(a == b for a, b in pairs)  # one value within an image
    assert len({a for a, _ in pairs}) > 3  # and another from image to image


def test_the_value_is_the_first_images_and_every_other_choice_is_the_images_own(engine):
    # the assignment is still drawn in every image, then replaced: the seed's stream goes on as per image
    template = "${c=!__who__}<${c}> __color__ {x|y|z} {1-2$$__who__}"
    batched, alone = batch(engine, template), per_image(engine, template)
    assert batched[0] == alone[0]
    first = bracketed(alone)[0][0]
    for b, a in zip(batched, alone):
        assert bracketed([b])[0] == [first]
        assert b.split(">", 1)[1] == a.split(">", 1)[1]


def test_an_image_depends_only_on_the_first_seed_and_its_own(engine, make_wildcards):
    template = "${c=!__who__}<${c}> __color__"
    whole = batch(engine, template)
    other = PromptEngine(engine.store.roots)  # nothing carried over from the run above
    one_by_one = [BatchExpander(other, FIRST)(template, s) for s in reversed(SEEDS)][::-1]
    assert one_by_one == whole


def test_a_template_without_immediate_variables_is_returned_as_it_is(engine):
    for template in ("__who__ in __color__", "${l={a|b}} ${l}", "{${c=!__who__}${c}|x}", ""):
        assert batch_template(engine, template, FIRST) == template


def test_lazy_variables_are_drawn_again_at_each_use(engine):
    template = "${l=__who__}<${l}><${l}><${l}>"
    assert batch_template(engine, template, FIRST) == template
    triples = bracketed(batch(engine, template))
    assert any(len(set(t)) > 1 for t in triples)  # within an image
    assert len({t[0] for t in triples}) > 3  # and between images


def test_an_immediate_value_made_of_a_lazy_one_is_fixed_and_the_lazy_one_still_varies(engine):
    template = "${l=__who__}${c=!${l}}<${c}> <${l}>"
    pairs = bracketed(batch(engine, template))
    assert len({c for c, _ in pairs}) == 1
    assert len({lazy for _, lazy in pairs}) > 3


def test_a_reassigned_variable_keeps_each_value_where_it_was_read(engine):
    # a sequence makes its assignments in order before its text: `d` copies the first value of `c`, and
    # the text shows the second; in the batch both are the first image's
    template = "${c=!__who__}${d=!${c}}${c=!__who__}<${c}><${d}>"
    differ = next(s for s in range(100) if len(set(bracketed(per_image(engine, template, [s]))[0])) == 2)
    first = bracketed(per_image(engine, template, [differ]))[0]
    assert bracketed(batch(engine, template, range(differ, differ + 20))) == [first] * 20


def test_keep_existing_counts_only_when_nothing_set_the_variable_before(engine):
    assert len({v[0] for v in bracketed(batch(engine, "${c?=!__who__}<${c}>"))}) == 1
    assert bracketed(batch(engine, "${c=Zed}${c?=!__who__}<${c}>")) == [["Zed"]] * len(SEEDS)


def test_assignments_inside_variants_and_wildcard_files_stay_per_image(engine):
    for template in ("{${c=!__who__}<${c}>|${c=!__who__}<${c}>}", "__cast__"):
        assert len({v[0] for v in bracketed(batch(engine, template))}) > 3


def test_a_template_file_shares_the_prompts_value_through_keep_existing(engine):
    prompts = batch(engine, "${c=!__who__}__tpl__")
    assert len({v[0] for v in bracketed(prompts)}) == 1
    assert len({p.rsplit(" ", 1)[1] for p in prompts}) > 2
    # without the prompt's assignment the file's own draws per image
    assert len({v[0] for v in bracketed(batch(engine, "__tpl__"))}) > 3


def test_wildcard_parameters_read_the_fixed_value_and_lazy_parameters_vary(engine):
    assert len({v[0] for v in bracketed(batch(engine, "${c=!__who__}__scene(who=${c})__"))}) == 1
    assert len({v[0] for v in bracketed(batch(engine, "__scene(who=__who__)__"))}) > 3
    nested = "${c=!__who__}__scene(who={young|old} ${c})__"
    people = [v[0] for v in bracketed(batch(engine, nested))]
    assert len({p.split()[1] for p in people}) == 1 and len({p.split()[0] for p in people}) == 2


def test_values_with_template_syntax_in_them_stay_text(engine):
    prompts = batch(engine, "${c=!__special__}<${c}>", range(FIRST, FIRST + 3))
    assert bracketed(prompts) == [["{x} | $y #z 100% __w__ a/b"]] * 3


def test_a_value_starting_with_blanks_keeps_them(engine):
    prompts = batch(engine, "${c=!{|very} __who__}<${c}>")
    values = {v[0] for v in bracketed(prompts)}
    assert len(values) == 1
    assert next(iter(values)).split(" ")[-1] in WHO


def test_an_assignment_followed_by_a_comment_is_fixed(engine):
    prompts = batch(engine, "${c=!__who__}// who it is\n<${c}> /* still */ __color__")
    assert len({v[0] for v in bracketed(prompts)}) == 1


def test_a_value_the_syntax_cannot_write_is_left_per_image_with_a_note(engine):
    fixed = fix_variables(engine, "${c=!__odd__}<${c}>", FIRST)
    assert fixed.fixed == ()
    assert fixed.notes and "per image" in fixed.notes[0] and "<template>:1:1" in fixed.notes[0]
    assert fixed.text == "${c=!__odd__}<${c}>"
    expand = BatchExpander(engine, FIRST)  # Forge's callback gathers the notes for the job's warnings
    expand("${c=!__odd__}<${c}>", FIRST + 1)
    assert expand.notes == list(fixed.notes)


def test_the_fixed_values_are_reported_with_where_they_are_set(engine):
    fixed = fix_variables(engine, "x ${c=!__who__}\n${d=!{p|q}} ${e=lazy}", FIRST)
    assert [(f.name, f.location.line, f.location.column) for f in fixed.fixed] == [("c", 1, 3), ("d", 2, 1)]
    assert fixed.fixed[0].value in WHO and fixed.fixed[1].value in ("p", "q")


def test_errors_point_into_the_users_template(engine):
    template = "${c=!__who__} then ${missing}"
    with pytest.raises(TemplateError) as alone:
        engine.prompt(template, FIRST)
    with pytest.raises(TemplateError) as batched:
        batch_template(engine, template, FIRST)
    assert batched.value.location == alone.value.location


def test_cyclical_mode_fixes_the_first_images_value(engine):
    template = "${c=!__@who__}<${c}> __@color__"
    fixed = batch_template(engine, template, 3, "cyclical")
    prompts = [engine.prompt(fixed, s, "cyclical") for s in range(3, 9)]
    assert {v[0] for v in bracketed(prompts)} == {bracketed([engine.prompt(template, 3, "cyclical")])[0][0]}
    assert len({p.rsplit(" ", 1)[1] for p in prompts}) > 1


def test_combinatorial_mode_is_refused_with_a_reason(engine):
    with pytest.raises(OrchestratorError, match="random or cyclical"):
        batch_template(engine, "${c=!__who__}${c}", 0, "combinatorial")


# Written after `${v=!`, a value reads back as itself, or literal() says it cannot be written. The oracle is
# the engine reading it back, and the cases it cannot are the syntax's own: an odd run of backslashes before
# an escapable character or at the end (the parser pairs backslashes), or a comment at the start.
_SYNTAX = st.text(st.sampled_from(list("{}|$#%_\\/*:=!?,() \t\nab~@")), max_size=12)


@settings(max_examples=600, deadline=None)
@given(_SYNTAX)
def test_a_written_value_reads_back_as_itself(value):
    written = literal(value)
    runs = re.findall(r"(\\+)(.?)", value, re.S)  # each run of backslashes and the character after it
    odd_run_before_special = any(len(run) % 2 and after in "{}|$#%_" for run, after in runs)  # "" at the end
    cannot = odd_run_before_special or value.lstrip(" \t\n").startswith(("//", "/*"))
    assert (written is None) == cannot
    if written is not None:
        assert PromptEngine([]).prompt("${v=!" + written + "}${v}", 0) == value


@pytest.mark.parametrize("value, writable", [("a\\b", True), ("a\\{", False), ("a\\\\{", True), ("a\\", False),
                                             ("a\\\\", True), (" lead", True), ("// no", False), ("a // b", True)])
def test_which_values_can_be_written(value, writable):
    written = literal(value)
    assert (written is not None) == writable
    if writable:
        assert PromptEngine([]).prompt("${v=!" + written + "}${v}", 0) == value


# -- the option -----------------------------------------------------------------------------------
def rules_file(tmp_path, text):
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_rules_value_wins_over_the_settings_which_win_over_the_default(tmp_path):
    assert Rules().variable_scope() == "image"
    assert Rules().variable_scope("batch") == "batch"
    assert Rules().variable_scope("sometimes") == "image"  # a Settings value from elsewhere: the default
    assert load_rules(rules_file(tmp_path, "variables: batch\n")).variable_scope("image") == "batch"
    assert load_rules(rules_file(tmp_path, "variables: image\n")).variable_scope("batch") == "image"
    assert load_rules(rules_file(tmp_path, "match: keyword\n")).variable_scope("batch") == "batch"


@pytest.mark.parametrize("value", ["per-batch", "[batch]", "Batch"])
def test_a_bad_rules_value_is_an_error_with_its_place_and_the_choices(tmp_path, value):
    path = rules_file(tmp_path, f"count: {{min: 1}}\nvariables: {value}\n")
    with pytest.raises(RulesError) as info:
        load_rules(path)
    message = info.value.one_line()
    assert f"{path}:2:12" in message and "image, batch" in message


def test_the_cli_draws_the_variables_once_per_run_with_variables_batch(engine):
    roots = [a for r in engine.store.roots for a in ("--wildcards", r)]

    def values(*more):
        out, err = io.StringIO(), io.StringIO()
        assert main(["prompts", "${c=!__who__}<${c}> __color__", "--count", "30", "--seed", str(FIRST), *roots,
                     *more], out, err) == 0
        return {v[0] for v in bracketed(out.getvalue().splitlines())}

    assert len(values("--variables", "batch")) == 1
    assert len(values("--variables", "image")) > 3
    assert len(values()) > 3  # per image unless asked


def test_compose_cli_follows_the_rules_variables(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("count: {min: 0, max: 0}\nvariables: batch\n")
    out, err = io.StringIO(), io.StringIO()
    code = main(["compose", "${who=!{ann|bea|cid|dot|eve|fay}} ${who} in __setting__", "--loras", SAMPLE_LORAS,
                 "--no-cache", "--family", "sdxl", "--count", "8", "--seed", "3", "--rules", str(rules)], out, err)
    assert code == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert len({line.split(" in ")[0] for line in lines}) == 1 and len(set(lines)) > 1
