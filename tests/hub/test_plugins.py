"""Plugins: built per hub (no global), built-ins through the same hooks, entry points loaded."""

from __future__ import annotations

import sys
import textwrap

import pytest

import hub.plugins
from hub.errors import ConfigError
from hub.plugins import build_plugin_manager, collect_types
from hub.service import Hub


def test_each_hub_builds_its_own_plugin_manager(hub_dir):
    assert not any(isinstance(v, type(build_plugin_manager())) for v in vars(hub.plugins).values())
    first, second = Hub(hub_dir), Hub(hub_dir)
    try:
        assert first.pm is not second.pm
        assert "plugins.notifiers.log" in {name for name, _ in first.pm.list_name_plugin()}
    finally:
        first.close()
        second.close()


def test_third_party_plugin_from_entry_point(tmp_path, monkeypatch, hub_dir):
    """A distribution that declares the `porchlight` entry-point group is loaded, like pip would."""
    package = tmp_path / "site"
    (package / "porch_extra").mkdir(parents=True)
    (package / "porch_extra" / "__init__.py").write_text(textwrap.dedent("""
        from hub.hookspecs import hookimpl
        seen = []

        @hookimpl
        def porchlight_event(hub, event):
            seen.append(event["kind"])
    """))
    dist = package / "porch_extra-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: porch-extra\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[porchlight]\nextra = porch_extra\n")
    monkeypatch.syspath_prepend(str(package))
    the_hub = Hub(hub_dir)
    try:
        the_hub.emit({"kind": "test", "summary": "hello"})
        assert sys.modules["porch_extra"].seen == ["test"]
    finally:
        the_hub.close()
        sys.modules.pop("porch_extra", None)


def test_a_type_claimed_twice_fails_at_start_up():
    class A: ...

    class B: ...

    assert collect_types([{"rtsp": A}, {"synthetic": B}], "camera") == {"rtsp": A, "synthetic": B}
    with pytest.raises(ConfigError, match="two plugins provide the camera type 'rtsp'; uninstall one"):
        collect_types([{"rtsp": A}, {"rtsp": B}], "camera")
