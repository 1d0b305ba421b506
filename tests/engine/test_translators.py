"""Translators of the languages with no kernel here (Julia, Scala, C#, F#, PowerShell, MATLAB) write what papermill
writes, wherever papermill's text is right; where it is not (non-ASCII, ``$``), ours is the exact literal."""

from __future__ import annotations

from fractions import Fraction

import pytest
from papermill import translators as pm

from airflow_notebook_provider.notebook.errors import ParameterError
from airflow_notebook_provider.notebook.translators import translator_for

SAME_AS_PAPERMILL = [0, -7, 2**31, -(2**31) - 1, 2**40, 1.5, -0.25, 1e-300, True, False, "plain text", "with 'single'",
                     'a "quote"', "back\\slash", "line\nbreak\ttab", [1, 2.5, "x"], {"a": 1, "b": [True, "z"]}, []]
PAPERMILL = {"julia": pm.JuliaTranslator, "scala": pm.ScalaTranslator, ".net-csharp": pm.CSharpTranslator,
             ".net-fsharp": pm.FSharpTranslator, ".net-powershell": pm.PowershellTranslator,
             "matlab": pm.MatlabTranslator, "R": pm.RTranslator, "python": pm.PythonTranslator}


def papermill_text(language: str, value: object) -> str:
    return PAPERMILL[language].translate(value)


def mixed_list(value: object) -> bool:
    """A list (here or inside a dict) that is empty or not of one scalar type."""
    if isinstance(value, dict):
        return any(mixed_list(v) for v in value.values())
    kinds = {type(v) for v in value} if isinstance(value, list) else set()
    return isinstance(value, list) and not (len(kinds) == 1 and kinds <= {bool, int, float, str})


@pytest.mark.parametrize("language", sorted(PAPERMILL))
@pytest.mark.parametrize("value", SAME_AS_PAPERMILL, ids=repr)
def test_same_literal_as_papermill(language: str, value: object) -> None:
    if language == "matlab" and isinstance(value, str) and any(c in value for c in "\n\t\\"):
        pytest.skip("MATLAB strings take no escapes: papermill's backslash sequences would stay text; refused here")
    if language == ".net-powershell" and isinstance(value, str) and any(c in value for c in "\n\t\\"):
        pytest.skip("PowerShell escapes with backticks, not backslashes: see test_powershell_escapes")
    if language == "R" and isinstance(value, float) and Fraction(repr(value)) != Fraction(value):
        pytest.skip("R's decimal reader is not correctly rounded: ours is hex (test_r_floats_read_back_exactly)")
    if language == ".net-csharp" and mixed_list(value) or language == ".net-fsharp" and mixed_list(value) and value:
        pytest.skip("papermill's list does not compile (C#: no best type; F#: one type a list): test_typed_lists")
    if language == "python" and isinstance(value, str) and "'" not in value and '"' in value:
        pytest.skip("Python: repr quoting differs from papermill's, both are exact (tests/engine/test_parameters.py)")
    ours = translator_for(language).translate(value)
    theirs = papermill_text(language, value)
    if language == "python" and isinstance(value, str | list | dict):
        assert eval(ours) == eval(theirs) == value
        return
    assert ours == theirs


@pytest.mark.parametrize(("language", "value", "expected", "papermill_wrote"), [
    ("R", "ü", '"\\u00fc"', '"\\xfc"'),  # papermill: a Latin-1 byte, not ü, in a UTF-8 R session
    ("R", "😀", '"\\U{1f600}"', '"\\U0001f600"'),
    ("julia", "$HOME ü", '"\\$HOME \\u00fc"', '"$HOME \\xfc"'),  # papermill: interpolates $HOME; \xfc is a raw byte
    # PowerShell closes a string at U+201C/U+201D/U+201E as at '"': unescaped, the rest of the value runs as code.
    (".net-powershell", "x\u201c; id; \u201dy", '"x`\u201c; id; `\u201dy"', '"x\\u201c; id; \\u201dy"'),
    ("scala", 2**70, 'BigInt("1180591620717411303424")', "1180591620717411303424L"),  # papermill: out of range
    (".net-csharp", 2**70, 'System.Numerics.BigInteger.Parse("1180591620717411303424")', "1180591620717411303424L"),
    (".net-fsharp", -(2**70), "-1180591620717411303424I", "-1180591620717411303424L"),
    (".net-powershell", 2**70, "[bigint]'1180591620717411303424'", "1180591620717411303424"),  # papermill: a double
    ("scala", "ü😀", '"\\u00fc\\ud83d\\ude00"', '"\\xfc\\U0001f600"'),  # papermill: invalid escapes in Scala
    (".net-csharp", "ü", '"\\u00fc"', '"\\xfc"'),
    (".net-fsharp", "😀", '"\\U0001f600"', '"\\U0001f600"'),
])
def test_exact_text_where_papermill_is_wrong(language: str, value: str, expected: str, papermill_wrote: str) -> None:
    assert translator_for(language).translate(value) == expected
    assert papermill_text(language, value) == papermill_wrote


def test_typed_lists() -> None:
    """Lists as each language's type rules need them (papermill's text would not compile or would convert)."""
    assert translator_for("c#").translate([1, 2.5, "x"]) == 'new object[] { 1, 2.5, "x" }'
    assert translator_for("c#").translate([]) == "new object[] {  }"
    assert translator_for("c#").translate(["a", "b"]) == 'new [] { "a", "b" }'  # one type: papermill's text
    assert translator_for("f#").translate([1, 2.5, "x"]) == '[ box 1; box 2.5; box "x" ]'
    assert translator_for("f#").translate([1, 3_000_000_000]) == "[ 1L; 3000000000L ]"
    assert translator_for("f#").translate({}) == "Map.empty<string, IComparable>"
    assert translator_for("julia").translate([1, 2.5, None]) == "Any[1, 2.5, nothing]"  # [1, 2.5] makes 1 a 1.0
    assert translator_for("julia").translate([1, 2.5, "x"]) == papermill_text("julia", [1, 2.5, "x"])
    assert translator_for("powershell").translate([[1, 2]]) == "@(,@(1, 2))"  # @(@(1, 2)) flattens


def test_r_floats_read_back_exactly() -> None:
    """R's decimal reader is off by one unit in the last place for some values (-6554.583279405751 reads as
    -6554.5832794057515, checked with R 4.2): a decimal is written only when it is exactly the double."""
    r = translator_for("R")
    assert [r.translate(v) for v in (0.5, 3.0, -0.0, 1e16, 2.5e-3)] == ["0.5", "3.0", "-0.0", "1e+16", "0x1.47ae147ae147bp-9"]
    assert r.translate(-6554.583279405751) == "-0x1.99a9551cc9421p+12"
    assert r.translate(0.1) == "0x1.999999999999ap-4" and float.fromhex("0x1.999999999999ap-4") == 0.1
    assert r.translate(5e-324) == "0x0.0000000000001p-1022"


def test_octave_lines_stay_short() -> None:
    """octave_kernel types code into a terminal that cuts lines at 4095 bytes (and Octave's syntax error would
    pass as output): long strings, cell arrays and maps go over several lines joined with `...`."""
    source = translator_for("octave").codify({"s": "ü" * 700, "l": list(range(1500)), "d": {"k": "x" * 5000}})
    assert max(len(line.encode()) for line in source.splitlines()) < 300
    assert source.count(" ...\n") > 30


def test_powershell_escapes() -> None:
    ps = translator_for("powershell")
    assert ps.translate('$x `y` "z"\n') == '"`$x ``y`` `"z`"`n"'
    assert ps.translate(None) == "$Null" and ps.translate([1, "a"]) == '@(1, "a")'


def test_refusals_name_the_problem() -> None:
    with pytest.raises(ParameterError, match="2\\*\\*53"):
        translator_for("R").codify({"n": 2**60})
    with pytest.raises(ParameterError, match="NUL"):
        translator_for("R").codify({"s": "a\x00b"})
    with pytest.raises(ParameterError, match="not a valid R name"):
        translator_for("R").codify({"_x": 1})
    with pytest.raises(ParameterError, match="printable ASCII"):
        translator_for("matlab").codify({"s": "ü"})
    with pytest.raises(ParameterError, match="None has no C# literal"):
        translator_for("c#").codify({"n": None})
    for language in ("R", "julia", "octave", "bash", "powershell"):
        with pytest.raises(ParameterError, match="Parameter 's': .*lone surrogate"):
            translator_for(language).codify({"s": "a\ud800b"})
    for key in (None, "", 1):
        with pytest.raises(ParameterError, match="non-empty string"):
            translator_for("R").codify({"d": {key: 1}})
        with pytest.raises(ParameterError, match="non-empty string"):
            translator_for("octave").codify({"d": {key: 1}})
    for name, why in (("PS1", "hangs the kernel"), ("PROMPT_COMMAND", "run before each prompt"), ("UID", "read-only"),
                      ("PS0", "run before each command")):
        with pytest.raises(ParameterError, match=f"bash treats {name} specially: .*{why}.*rename the parameter"):
            translator_for("bash").codify({name: "x"})


def test_codify_conventions() -> None:
    assert translator_for("R").codify({"a": 1}) == "# Parameters\na <- 1\n"
    assert translator_for("scala").codify({"a": 3_000_000_000}) == "// Parameters\nval a = 3000000000L\n"
    assert translator_for("matlab").codify({"a": "x"}) == '% Parameters\na = "x";\n'
    assert translator_for("f#").codify({"a": [1, 2]}) == "(* Parameters *)\nlet a = [ 1; 2 ]\n"
    assert translator_for("c#").codify({"a": 1}) == "// Parameters\nvar a = 1;\n"
    assert translator_for("bash").codify({"a": ["x y", 2]}) == "# Parameters\nunset -v a; a=($'x y' $'2')\n"
    assert translator_for("octave").translate("ü\n") == '"\\303\\274\\012"'
