"""Loading plugins: order, sources, and the mistakes a plugin author makes."""

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from installed_dist import install_distribution

from voicepipe.errors import UsageError
from voicepipe.plugins import BUILTINS, make_plugin_manager


def fake_profile(tmp_path: Path, plugins=(), disable=()):
    return SimpleNamespace(plugins=list(plugins), disable=list(disable), base_dir=tmp_path)


def write_plugin(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / "plugins" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return f"plugins/{name}"


def test_builtins_come_first_then_profile_plugins(tmp_path):
    spec = write_plugin(tmp_path, "hello.py", "def voicepipe_event(event, ctx):\n    pass\n")
    pm = make_plugin_manager(fake_profile(tmp_path, [spec]), autoload=False)
    names = [info.name for info in pm.describe()]
    assert names == list(BUILTINS) + ["hello"]
    hello = next(i for i in pm.describe() if i.name == "hello")
    assert hello.source == "plugins/hello.py"
    assert hello.hooks == ["voicepipe_event"]


def test_profile_can_disable_a_builtin(tmp_path):
    pm = make_plugin_manager(fake_profile(tmp_path, disable=["console", "metrics"]), autoload=False)
    names = {info.name for info in pm.describe()}
    assert "console" not in names and "metrics" not in names and "transcript" in names


def test_misspelt_hook_fails_loudly_with_a_suggestion(tmp_path):
    spec = write_plugin(tmp_path, "typo.py", "def voicepipe_evnt(event, ctx):\n    pass\n")
    with pytest.raises(UsageError) as err:
        make_plugin_manager(fake_profile(tmp_path, [spec]), autoload=False)
    assert str(err.value) == "plugins/typo.py: unknown hook 'voicepipe_evnt' (did you mean 'voicepipe_event'?)"


def test_plugin_file_with_syntax_error_names_file_and_line(tmp_path):
    spec = write_plugin(tmp_path, "broken.py", "def voicepipe_event(event, ctx)\n    pass\n")
    with pytest.raises(UsageError) as err:
        make_plugin_manager(fake_profile(tmp_path, [spec]), autoload=False)
    assert str(err.value).startswith("plugins/broken.py:1:")
    assert "syntax error" in str(err.value)


def test_hook_argument_not_in_spec_is_reported(tmp_path):
    spec = write_plugin(tmp_path, "args.py", "def voicepipe_event(event, ctx, colour):\n    pass\n")
    with pytest.raises(UsageError) as err:
        make_plugin_manager(fake_profile(tmp_path, [spec]), autoload=False)
    assert str(err.value).startswith("plugins/args.py: ")
    assert "colour" in str(err.value)


def test_unknown_plugin_name_suggests_a_builtin(tmp_path):
    with pytest.raises(UsageError) as err:
        make_plugin_manager(fake_profile(tmp_path, ["transcrpt"]), autoload=False)
    assert str(err.value) == "unknown plugin 'transcrpt' (did you mean 'transcript'?)"


def test_missing_plugin_file(tmp_path):
    with pytest.raises(UsageError) as err:
        make_plugin_manager(fake_profile(tmp_path, ["plugins/nope.py"]), autoload=False)
    assert str(err.value).startswith("plugin file 'plugins/nope.py' not found")


def test_plugin_file_resolves_against_the_working_directory_too(tmp_path, monkeypatch):
    spec = write_plugin(tmp_path, "cwd_plugin.py", "def voicepipe_session_start(ctx):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    pm = make_plugin_manager(fake_profile(tmp_path / "elsewhere", [spec]), autoload=False)
    assert pm.get_plugin("cwd_plugin") is not None


def test_dotted_module_plugin(tmp_path, monkeypatch):
    (tmp_path / "my_vp_plugin.py").write_text("def voicepipe_session_end(ctx, reason):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = make_plugin_manager(fake_profile(tmp_path, ["my_vp_plugin"]), autoload=False)
    assert next(i for i in pm.describe() if i.name == "my_vp_plugin").hooks == ["voicepipe_session_end"]


def test_entry_point_plugins_load_after_builtins(tmp_path, monkeypatch):
    site = install_distribution(
        tmp_path / "site", "voicepipe-extra", "1.2",
        "[voicepipe]\nextra = voicepipe_extra\n\n[voicepipe.other]\nnot_a_plugin = voicepipe_extra\n",
        {"voicepipe_extra": "def voicepipe_session_start(ctx):\n    pass\n"},
    )
    monkeypatch.syspath_prepend(str(site))
    pm = make_plugin_manager(fake_profile(tmp_path), autoload=True)
    infos = pm.describe()
    assert [i.name for i in infos] == list(BUILTINS) + ["extra"]
    assert infos[-1].source == "entry point voicepipe-extra 1.2"
    assert infos[-1].hooks == ["voicepipe_session_start"]
    assert [i.name for i in make_plugin_manager(fake_profile(tmp_path), autoload=False).describe()] == list(BUILTINS)


def test_a_module_s_marked_function_of_another_name_is_found_and_its_other_names_are_not(tmp_path):
    spec = write_plugin(tmp_path, "named.py", """\
        from pathlib import Path
        from voicepipe import hookimpl

        LIMITS = {"voicepipe_event": 1}
        Helper = Path

        def helper(x):
            return x

        @hookimpl(specname="voicepipe_session_end")
        def finish(ctx, reason):
            pass
        """)
    pm = make_plugin_manager(fake_profile(tmp_path, [spec]), autoload=False)
    assert next(i for i in pm.describe() if i.name == "named").hooks == ["voicepipe_session_end"]
