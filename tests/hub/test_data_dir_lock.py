"""One hub per data dir: a second `run` is refused naming the first; readers keep working."""

from __future__ import annotations

import json
import subprocess
import sys

from hub.lock import WRITE_LOCK, DataDirLock

START = "2026-11-20T14:00:00Z"


def _start(root) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "run", "--data", str(root), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    assert "listening on " in line, proc.stderr.read() if proc.poll() is not None else line
    return proc


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.stderr.read()


def test_a_second_run_is_refused_naming_the_first_and_readers_keep_working(
        hub_dir, clip25, cli, passfile, tmp_path):
    assert cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start", START,
               clip25)[0] == 0
    first = _start(hub_dir)
    try:
        assert (hub_dir / "hub.lock").read_text() == f"{first.pid} porchlight run\n"
        second = subprocess.run(
            [sys.executable, "-m", "hub.cli", "run", "--data", str(hub_dir), "--listen",
             "127.0.0.1:0"], capture_output=True, text=True, timeout=60,
        )
        assert second.returncode == 1
        assert second.stdout == ""
        assert second.stderr == (f"porchlight: error: the hub in {hub_dir} is in use (pid "
                                 f"{first.pid}: porchlight run): one hub per data dir; stop it "
                                 "first\n")
        # A repair under a recording hub's feet is refused the same way.
        code, out, err = cli("footage", "check", "--data", hub_dir)
        assert (code, out) == (1, "")
        assert err == (f"porchlight: error: the hub in {hub_dir} is in use (pid {first.pid}: "
                       "porchlight run): one hub per data dir; stop it first\n")
        # Readers, and the writers that hand work to the running hub, keep working.
        code, out, err = cli("footage", "list", "--data", hub_dir, "--json")
        assert code == 0, err
        assert len(json.loads(out)) == 3
        for command in (("events", "list"), ("alerts", "list"), ("camera", "list"),
                        ("requests", "list")):
            code, _, err = cli(*command, "--data", hub_dir)
            assert code == 0, (command, err)
        code, _, err = cli("footage", "export", "--data", hub_dir, "--camera", "porch",
                           "--from", START, "--to", "2026-11-20T14:00:25Z",
                           "--out", tmp_path / "while-running.mp4", "--passphrase-file", passfile)
        assert code == 0, err
        code, _, err = cli("footage", "hold", "--data", hub_dir, "--camera", "porch",
                           "--from", START, "--to", "2026-11-20T14:00:05Z")
        assert code == 0, err
        assert (hub_dir / "hub.lock").exists() and not (hub_dir / WRITE_LOCK).exists()
    finally:
        log = _stop(first)
    assert "Traceback" not in log
    assert not (hub_dir / "hub.lock").exists()
    # Once the hub has stopped, the data dir is free again.
    code, out, err = cli("footage", "check", "--data", hub_dir)
    assert code == 0, err


def test_writers_wait_for_each_other_by_refusing_with_the_holder(hub_dir, cli):
    with DataDirLock(hub_dir, WRITE_LOCK, "porchlight camera add"):
        code, out, err = cli("camera", "add", "--data", hub_dir, "porch", "--synthetic")
        assert (code, out) == (1, "")
        assert err.startswith(f"porchlight: error: another command is writing to {hub_dir} (pid ")
        assert err.endswith(": porchlight camera add); try again when it is done\n")
        # Reading needs no lock.
        assert cli("camera", "list", "--data", hub_dir)[0] == 0
    assert not (hub_dir / WRITE_LOCK).exists()
    code, _, err = cli("camera", "add", "--data", hub_dir, "porch", "--synthetic")
    assert code == 0, err
    assert not (hub_dir / WRITE_LOCK).exists()


def test_a_killed_holder_leaves_no_lock(hub_dir, cli):
    """The kernel drops a dead process's flock; its stale file is taken over."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from hub.lock import DataDirLock;"
         f"DataDirLock({str(hub_dir)!r}, 'hub.lock', 'porchlight run').acquire();"
         "print('locked', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        code, _, err = cli("footage", "check", "--data", hub_dir)
        assert code == 1 and f"(pid {holder.pid}: porchlight run)" in err
    finally:
        holder.kill()
        holder.wait()
    assert (hub_dir / "hub.lock").exists()  # killed: nobody removed the file
    code, out, err = cli("footage", "check", "--data", hub_dir)
    assert code == 0, err
    assert not (hub_dir / "hub.lock").exists()
