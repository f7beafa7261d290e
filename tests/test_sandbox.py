"""The template sandbox: the known Jinja2 escape payloads, and include/import/extends kept to
the template folders and free of recursion.

Each payload is a line of a template given to the real CLI (``show``) in a subprocess: it must
be refused as one ``error:`` line naming the template file and line, exit 1, no traceback, and
what it tried must not have happened (no file written, no /etc/passwd read).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compassion_audio.core.errors import TemplateError
from compassion_audio.core.limits import MAX_TEMPLATE_DEPTH
from compassion_audio.script.library import builtin_dir, load_exercise
from compassion_audio.script.templates import render_text

NOT_ALLOWED = "not allowed in a template: access to attribute '{}' of '{}' object is unsafe. " \
              "(templates may use only their values and helpers)"
UNSAFE_ATTR = "not allowed in a template: access to attribute '{}' is unsafe. " \
              "(templates may use only their values and helpers)"
UNDEFINED = "undefined: {} (declare it under [params] or check the spelling)"
OUTSIDE = ("include, import or extends reaches outside the template folders (only files in the "
           "exercise's own folder, or a folder below it, and the built-in exercises can be included)")
MISSING = ("include, import or extends names a template file that does not exist (name it relative "
           "to the template, e.g. {% include 'parts/opening.txt.j2' %})")
IN_USE = "(an include, import or extends may not lead back to a template in use)"
RECURSION = (f"recursion deeper than {MAX_TEMPLATE_DEPTH} (a macro or recursive loop that keeps "
             "calling itself) (give it a condition that ends it)")

WRITE = "touch {dir}/pwned"
READ = "cat /etc/passwd"

# (payload on line 2 of the template, the message after "error: <file>:2: ")
PAYLOADS = [
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", NOT_ALLOWED.format("__class__", "str")),
    ("{{ ().__class__.__base__.__subclasses__() }}", NOT_ALLOWED.format("__class__", "tuple")),
    (f"{{{{ cycler.__init__.__globals__.os.system('{WRITE}') }}}}", NOT_ALLOWED.format("__init__", "type")),
    (f"{{{{ joiner.__init__.__globals__.os.popen('{READ}').read() }}}}", NOT_ALLOWED.format("__init__", "type")),
    (f"{{{{ namespace.__init__.__globals__.os.system('{WRITE}') }}}}", NOT_ALLOWED.format("__init__", "type")),
    (f"{{{{ lipsum.__globals__.os.popen('{READ}').read() }}}}", UNDEFINED.format("'lipsum' is undefined")),
    (f"{{{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('{WRITE}') }}}}",
     NOT_ALLOWED.format("_TemplateReference__context", "TemplateReference")),
    ("{{ self.__init__.__globals__.__builtins__.open('{dir}/pwned', 'w').write('x') }}",
     NOT_ALLOWED.format("__init__", "TemplateReference")),
    ("{{ request|attr('__class__') }}", UNSAFE_ATTR.format("__class__")),
    ("{{ ''|attr('__class__')|attr('__mro__')|attr('__getitem__')(1) }}", UNSAFE_ATTR.format("__class__")),
    ("{{ pause|attr('__globals__') }}", UNSAFE_ATTR.format("__globals__")),
    ('{{ "{0.__class__.__mro__}".format("") }}', NOT_ALLOWED.format("__class__", "str")),
    ('{{ "{x.__class__.__mro__}".format_map({"x": ""}) }}', NOT_ALLOWED.format("__class__", "str")),
    ('{{ "{0.__class__.__mro__}".format_map({"0": ""}) }}', "IndexError: tuple index out of range"),
    ("{{ config.__class__.__init__.__globals__ }}", NOT_ALLOWED.format("__init__", "StrictUndefined")),
    ("{{ range.__self__ }}", UNDEFINED.format("'function object' has no attribute '__self__'")),
    (f"{{{{ url_for.__globals__.os.popen('{READ}').read() }}}}", UNDEFINED.format("'url_for' is undefined")),
    ("{{ get_flashed_messages() }}", UNDEFINED.format("'get_flashed_messages' is undefined")),
    ("{{ pause.__globals__ }}", NOT_ALLOWED.format("__globals__", "function")),
    (f"{{% import 'os' as os %}}{{{{ os.system('{WRITE}') }}}}", MISSING),
    ("{% include '/etc/passwd' %}", OUTSIDE),
    ("{% include '../../../../../../../../../etc/passwd' %}", OUTSIDE),
    ("{% extends '/etc/hostname' %}", OUTSIDE),
    ("{% from '../x.j2' import m %}", OUTSIDE),
    ("{% include 'link.j2' %}", OUTSIDE),  # a link in the folder to /etc/passwd
]


def run_show(template: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TMPDIR=str(tmp_path), COMPASSION_AUDIO_CACHE=str(tmp_path / "cache"))
    env.pop("COMPASSION_AUDIO_EXERCISES", None)
    return subprocess.run([sys.executable, "-m", "compassion_audio", "show", str(template)],
                          cwd=template.parent, env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("payload, message", PAYLOADS, ids=[p for p, _ in PAYLOADS])
def test_escape_payload_is_refused(payload: str, message: str, tmp_path: Path):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "link.j2").symlink_to("/etc/passwd")
    template = folder / "t.txt.j2"
    template.write_text("Hello there.\n" + payload.replace("{dir}", str(folder)) + "\nGoodbye.\n")
    result = run_show(template, tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"error: {template}:2: {message}\n"
    assert "Traceback" not in result.stderr
    assert "root:" not in result.stdout + result.stderr  # /etc/passwd was not read out
    assert not (folder / "pwned").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["link.j2", "t.txt.j2"]


def exercise_in(folder: Path, files: dict[str, str], main: str = "t.txt.j2"):
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return load_exercise(folder / main)


def refusal(exercise) -> str:
    with pytest.raises(TemplateError) as caught:
        render_text(exercise, {})
    return str(caught.value)


def test_includes_within_the_folder_tree_work(tmp_path: Path):
    exercise = exercise_in(tmp_path, {
        "t.txt.j2": "Hello.\n{% include 'parts/middle.j2' %}\n"
                    "{% from 'parts/macros.j2' import greet %}{{ greet('friend') }}\n",
        "parts/middle.j2": "+++\ntitle = \"a part\"\n+++\nThe middle. [pause 2s]\n{% include 'end.j2' %}\n",
        "parts/end.j2": "The end of the part.\n",
        "parts/macros.j2": "{% macro greet(who) %}Hello, {{ who }}.{% endmacro %}\n"})
    # The part's front matter is not spoken (its lines are kept blank, so its errors give the
    # file's own line numbers: here a paragraph break).
    assert render_text(exercise, {}) == ("Hello.\n\nThe middle. [pause 2s]\nThe end of the part.\n"
                                         "Hello, friend.\n")


def test_a_built_in_exercise_can_be_included(tmp_path: Path):
    # The built-in folder is allowed: reached here by its absolute path.
    builtin = builtin_dir() / "breathing-pacer.txt.j2"
    exercise = exercise_in(tmp_path, {"t.txt.j2": "{% set minutes, rate = 5, 0 %}Before.\n"
                                                  f"{{% include '{builtin}' %}}\n"})
    assert render_text(exercise, {}).startswith("Before.\n\n[chapter Beginning]\nSettle into")


def test_self_include_is_refused(tmp_path: Path):
    exercise = exercise_in(tmp_path, {"t.txt.j2": "Hello.\n{% include 't.txt.j2' %}\n"})
    assert refusal(exercise) == f"{tmp_path}/t.txt.j2:2: the template includes itself {IN_USE}"


def test_self_extends_is_refused(tmp_path: Path):
    exercise = exercise_in(tmp_path, {"t.txt.j2": "{% extends 't.txt.j2' %}\n"})
    assert refusal(exercise) == f"{tmp_path}/t.txt.j2:1: the template includes itself {IN_USE}"


def test_templates_including_each_other_are_refused(tmp_path: Path):
    exercise = exercise_in(tmp_path, {"t.txt.j2": "Hello.\n{% include 'parts/b.j2' %}\n",
                                      "parts/b.j2": "B.\n\n{% include '../t.txt.j2' %}\n"})
    assert refusal(exercise) == (f"{tmp_path}/parts/b.j2:3: the template includes t.txt.j2, "
                                 f"which includes it back {IN_USE}")


def test_an_include_chosen_at_render_time_is_bounded(tmp_path: Path):
    # The name is computed, so no reading of the source could see the cycle.
    exercise = exercise_in(tmp_path, {"t.txt.j2": "Hello.\n{% include ['t', 'txt', 'j2']|join('.') %}\n"})
    assert refusal(exercise) == f"{tmp_path}/t.txt.j2:2: the template includes itself {IN_USE}"


def test_recursive_macro_is_refused(tmp_path: Path):
    exercise = exercise_in(tmp_path, {"t.txt.j2": "Hello.\n{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}\n"
                                                  "{{ m(1) }}\n"})
    assert refusal(exercise) == f"{tmp_path}/t.txt.j2:2: {RECURSION}"


def test_recursive_loop_is_refused(tmp_path: Path):
    exercise = exercise_in(tmp_path, {"t.txt.j2": "Hello.\n{% for x in [1] recursive %}{{ loop([x]) }}"
                                                  "{% endfor %}\n"})
    assert refusal(exercise) == f"{tmp_path}/t.txt.j2:2: {RECURSION}"


def test_bounded_recursion_still_works(tmp_path: Path):
    exercise = exercise_in(tmp_path, {"t.txt.j2": "{% macro count(n) %}{{ n }}{% if n < 40 %} {{ count(n + 1) }}"
                                                  "{% endif %}{% endmacro %}Count {{ count(1) }}.\n"})
    assert render_text(exercise, {}) == "Count " + " ".join(str(n) for n in range(1, 41)) + ".\n"


def test_error_in_an_included_template_names_that_file(tmp_path: Path):
    exercise = exercise_in(tmp_path, {"t.txt.j2": "Hello.\n{% include 'part.j2' %}\n",
                                      "part.j2": "Fine.\n{{ nowhere }}\n"})
    assert refusal(exercise) == (f"{tmp_path}/part.j2:2: undefined: 'nowhere' is undefined "
                                 "(declare it under [params] or check the spelling)")


def test_included_binary_file_is_refused_naming_it(tmp_path: Path):
    exercise = exercise_in(tmp_path, {"t.txt.j2": "Hello.\n{% include 'part.j2' %}\n"})
    (tmp_path / "part.j2").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert refusal(exercise) == (f"{tmp_path}/part.j2:3: the template is a binary file, not text "
                                 "(give a .txt.j2 file of plain text saved as UTF-8)")


def test_a_missing_include_can_be_ignored(tmp_path: Path):
    exercise = exercise_in(tmp_path, {"t.txt.j2": "Hello.\n{% include 'nowhere.j2' ignore missing %}\nBye.\n"})
    assert render_text(exercise, {}) == "Hello.\nBye.\n"
    exercise = exercise_in(tmp_path, {"t.txt.j2": "Hello.\n{% include '/etc/hostname' ignore missing %}\n"})
    assert refusal(exercise) == f"{tmp_path}/t.txt.j2:2: {OUTSIDE}"


def test_lint_reports_an_error_in_an_included_template_with_its_file(tmp_path: Path):
    from compassion_audio.script.lint import check_exercise

    exercise = exercise_in(tmp_path, {"t.txt.j2": "Hello there, and welcome.\n{% include 'part.j2' %}\n",
                                      "part.j2": "Fine.\n{{ nowhere }}\n"})
    messages = [(p.severity, p.message, p.line) for p in check_exercise(exercise).problems]
    assert messages == [("error", f"standard, individual, empty profile: {tmp_path}/part.j2:2: undefined: "
                         "'nowhere' is undefined (declare it under [params] or check the spelling)", None)]
