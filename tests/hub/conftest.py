"""Hub test helpers: run the CLI in process and fail tests that leak threads."""

from __future__ import annotations

import threading

import pytest

from hub.cli.main import main


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves threads running."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()
              and not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))]
    for thread in leaked:
        thread.join(timeout=2)
    leaked = [t for t in leaked if t.is_alive()]
    assert not leaked, f"threads leaked: {leaked}"


@pytest.fixture
def cli(capsys):
    """Run `porchlight ARGS...` in process; return (exit code, stdout, stderr)."""

    def run(*args: str):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code
        out, err = capsys.readouterr()
        return code, out, err

    return run
