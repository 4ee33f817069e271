"""`score --ray` on real Ray: a local instance (scores equal to one process's, resume) and a 3-node cluster on
this machine (`ray start --head` and two worker nodes) where a scorer actor and then a whole worker node are
killed mid-run, and a run whose driver is killed is run again: the output has every input exactly once."""

from __future__ import annotations

import csv
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fiqa_edge.assets import SAMPLES_DIR

pytestmark = pytest.mark.heavy
pytest.importorskip("ray", reason="the `cluster` extra (ray[data], pyarrow, fsspec) is not installed")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

RAY = str(Path(sys.executable).with_name("ray"))
COPIES = 30  # of the 40 sample faces: 1,200 photos, long enough to kill things mid-run


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, list[str]]:
    """1,200 face photos (copies of the samples under other names) and one broken file."""
    root = tmp_path_factory.mktemp("photos")
    for k in range(COPIES):
        folder = root / f"set{k:02d}"
        folder.mkdir()
        for face in sorted(SAMPLES_DIR.glob("*/*.jpg")):
            os.link(face, folder / face.name) if k else shutil.copy(face, folder / face.name)
    (root / "set00" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    return root, sorted(str(p) for p in root.rglob("*.jpg"))


def _score(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fiqa_edge", "score", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _rows(out: Path) -> list[dict]:
    return pq.read_table(sorted(str(p) for p in out.glob("part-*.parquet"))).to_pylist()


def _exactly_once(out: Path, expected: list[str]) -> list[dict]:
    rows = _rows(out)
    counts = Counter(r["path"] for r in rows)
    assert sorted(counts) == sorted(expected) and set(counts.values()) == {1}, counts.most_common(3)
    return rows


def test_local_ray_scores_a_folder_and_a_table_as_one_process_does_and_resumes(photos, tmp_path):
    root, expected = photos
    subset = root / "set00"
    one = _score(str(subset), "--csv", str(tmp_path / "one.csv"), "-q")
    assert one.returncode == 1  # the broken file
    reference = {r["path"]: r for r in csv.DictReader((tmp_path / "one.csv").open())}
    out = tmp_path / "ray"
    run = _score(str(subset), "--ray", "--out", str(out), "--block-size", "8", "-q")
    assert run.returncode == 1, run.stderr  # the same rule: a failed input fails the run
    rows = _exactly_once(out, [p for p in expected if p.startswith(str(subset))])
    for r in rows:
        if r["error"] is None:
            assert abs(r["score"] - float(reference[r["path"]]["score"])) <= 1e-6
        else:
            assert r["path"].endswith("broken.jpg") and reference[r["path"]]["error"]
    parts = {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    again = _score(str(subset), "--ray", "--out", str(out), "--block-size", "8", "-q")
    assert "(0 scored now)" in again.stderr and {p: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")} == parts
    refused = _score(str(subset), "--ray", "--out", str(out), "--block-size", "8", "--min-quality", "30p", "-q")
    assert refused.returncode == 1 and "holds a run with other min_quality" in refused.stderr

    table = tmp_path / "faces.parquet"  # the same photos as encoded bytes in a table, named by a path column
    names = sorted(str(p) for p in subset.glob("*.jpg"))
    pq.write_table(pa.table({"path": names, "image": [Path(n).read_bytes() for n in names]}), table)
    from_table = _score(str(table), "--ray", "--out", str(tmp_path / "table.parquet"), "--block-size", "16", "-q")
    assert from_table.returncode == 1  # into one Parquet file this time
    by_name = {r["path"]: r for r in pq.read_table(tmp_path / "table.parquet").to_pylist()}
    assert sorted(by_name) == names and len(pq.read_table(tmp_path / "table.parquet")) == len(names)
    assert all(abs(by_name[r["path"]]["score"] - r["score"]) <= 1e-6 for r in rows if r["error"] is None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: the cluster's token (Ray's token authentication, as its docs set it up: one secret in every process's environment)
ENV = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}


@pytest.fixture(scope="module")
def cluster():
    """A head node and two worker nodes of one CPU each, on 127.0.0.1; stopped afterwards."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    head = subprocess.run([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                           "--include-dashboard", "false", *common], capture_output=True, text=True, timeout=180,
                          check=False, env=ENV)
    if head.returncode != 0:
        pytest.skip(f"Ray cannot start a head node here: {head.stderr.strip()[-300:]}")
    workers = [subprocess.Popen([RAY, "start", "--address", address, "--node-ip-address", "127.0.0.1", "--block", *common],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=ENV)
               for _ in range(2)]
    try:
        _wait_for_nodes(address, 3)
        yield address, workers
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120, check=False, env=ENV)


def _wait_for_nodes(address: str, count: int, timeout: float = 120) -> None:
    probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, timeout=120,
                               check=False, env=ENV)
        if alive.stdout.strip().isdigit() and int(alive.stdout.strip()) >= count:
            return
        time.sleep(2)
    pytest.skip(f"the Ray cluster at {address} did not reach {count} nodes in {timeout:.0f} s")


def _wait_for_parts(out: Path, count: int, job: subprocess.Popen, timeout: float = 300) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline and job.poll() is None:
        done = len(list(out.glob("part-*.parquet")))
        if done >= count:
            return done
        time.sleep(0.2)
    pytest.fail(f"{count} parts were not written in time (job exit {job.poll()}): {job.stderr.read() if job.stderr else ''}")
    return 0


def _processes(marker: str) -> list[int]:
    """The PIDs whose command line holds ``marker`` (Ray names an actor's process after its class)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _start(photos_root: Path, out: Path, address: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fiqa_edge", "score", str(photos_root), "--ray", "--ray-address", address,
                             "--out", str(out), "--block-size", "10", "--actors", "2", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=ENV)


def test_killed_actor_and_killed_node_leave_every_input_exactly_once(photos, cluster, tmp_path):
    root, expected = photos
    address, workers = cluster
    out = tmp_path / "faults"
    blocks = -(-len(expected) // 10)
    job = _start(root, out, address)
    at_actor = _wait_for_parts(out, 3, job)
    scorers = _processes("BlockScorer")
    assert scorers, "no scorer actor process found"
    os.kill(scorers[0], signal.SIGKILL)  # one scorer actor, kill -9
    at_node = _wait_for_parts(out, at_actor + 5, job)
    os.killpg(workers[0].pid, signal.SIGKILL)  # a whole worker node: its raylet and its workers
    _, stderr = job.communicate(timeout=900)
    assert job.returncode == 1, stderr  # the broken photo; every other one scored
    assert at_actor < blocks and at_node < blocks  # both kills came mid-run
    rows = _exactly_once(out, expected)
    assert sum(r["error"] is not None for r in rows) == 1


def test_a_run_whose_driver_is_killed_finishes_when_run_again(photos, cluster, tmp_path):
    root, expected = photos
    address, _ = cluster
    out = tmp_path / "resumed"
    job = _start(root, out, address)
    _wait_for_parts(out, 4, job)
    os.killpg(job.pid, signal.SIGKILL)  # the driver: Ctrl-C or a crash
    job.wait(timeout=60)
    again = _start(root, out, address)
    _, stderr = again.communicate(timeout=900)
    assert again.returncode == 1, stderr
    blocks = -(-len(expected) // 10)
    scored_now = int(re.search(r"\((\d+) scored now\)", stderr)[1])  # type: ignore[index]
    assert 0 < scored_now <= blocks - 4  # only what the killed run had not written
    _exactly_once(out, expected)
