"""Translators of the languages with no kernel here (Julia, Scala, C#, F#, PowerShell, MATLAB) write what papermill
writes, wherever papermill's text is right; where it is not (non-ASCII, ``$``), ours is the exact literal."""

from __future__ import annotations

import pytest
from papermill import translators as pm

from airflow_notebook_provider.engine.errors import ParameterError
from airflow_notebook_provider.engine.translators import translator_for

SAME_AS_PAPERMILL = [0, -7, 2**31, -(2**31) - 1, 2**40, 1.5, -0.25, 1e-300, True, False, "plain text", "with 'single'",
                     'a "quote"', "back\\slash", "line\nbreak\ttab", [1, 2.5, "x"], {"a": 1, "b": [True, "z"]}, []]
PAPERMILL = {"julia": pm.JuliaTranslator, "scala": pm.ScalaTranslator, ".net-csharp": pm.CSharpTranslator,
             ".net-fsharp": pm.FSharpTranslator, ".net-powershell": pm.PowershellTranslator,
             "matlab": pm.MatlabTranslator, "R": pm.RTranslator, "python": pm.PythonTranslator}


def papermill_text(language: str, value: object) -> str:
    return PAPERMILL[language].translate(value)


@pytest.mark.parametrize("language", sorted(PAPERMILL))
@pytest.mark.parametrize("value", SAME_AS_PAPERMILL, ids=repr)
def test_same_literal_as_papermill(language: str, value: object) -> None:
    if language == "matlab" and isinstance(value, str) and any(c in value for c in "\n\t\\"):
        pytest.skip("MATLAB strings take no escapes: papermill's backslash sequences would stay text; refused here")
    if language == ".net-powershell" and isinstance(value, str) and any(c in value for c in "\n\t\\"):
        pytest.skip("PowerShell escapes with backticks, not backslashes: see test_powershell_escapes")
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
    ("julia", "$HOME ü", '"\\$HOME \\u{fc}"', '"$HOME \\xfc"'),  # papermill: interpolates $HOME; \xfc is a raw byte
    ("scala", "ü😀", '"\\u00fc\\ud83d\\ude00"', '"\\xfc\\U0001f600"'),  # papermill: invalid escapes in Scala
    (".net-csharp", "ü", '"\\u00fc"', '"\\xfc"'),
    (".net-fsharp", "😀", '"\\U0001f600"', '"\\U0001f600"'),
])
def test_exact_text_where_papermill_is_wrong(language: str, value: str, expected: str, papermill_wrote: str) -> None:
    assert translator_for(language).translate(value) == expected
    assert papermill_text(language, value) == papermill_wrote


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


def test_codify_conventions() -> None:
    assert translator_for("R").codify({"a": 1}) == "# Parameters\na <- 1\n"
    assert translator_for("scala").codify({"a": 3_000_000_000}) == "// Parameters\nval a = 3000000000L\n"
    assert translator_for("matlab").codify({"a": "x"}) == '% Parameters\na = "x";\n'
    assert translator_for("f#").codify({"a": [1, 2]}) == "(* Parameters *)\nlet a = [ 1; 2 ]\n"
    assert translator_for("c#").codify({"a": 1}) == "// Parameters\nvar a = 1;\n"
    assert translator_for("bash").codify({"a": ["x y", 2]}) == "# Parameters\nunset -v a; a=($'x y' $'2')\n"
    assert translator_for("octave").translate("ü\n") == '"\\303\\274\\012"'
