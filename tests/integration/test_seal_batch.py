"""``inkless seal`` on a folder or several files: every document sealed in parallel, each seal valid,
a bad file named with its reason without stopping the others, a progress line per file."""

from __future__ import annotations

from pathlib import Path

import pytest

from inkless.app import build_node
from inkless.config import load_settings
from inkless.seals.model import Indication
from tests.helpers.cli import inkless
from tests.helpers.seals import sample_pdf


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    data = tmp_path / "node"
    done = inkless("init", "--data", str(data), "--demo")
    assert done.returncode == 0, done.stderr
    return data


def _verdicts(data: Path, files: list[Path]) -> dict[str, Indication]:
    node = build_node(load_settings(data))
    try:
        assert node.sealing is not None
        return {f.name: node.sealing.verify(f.read_bytes(), actor="test").indication for f in files}
    finally:
        node.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_folder_is_sealed_with_a_valid_seal_on_every_document(node_dir: Path, tmp_path: Path,
                                                                 workers: str) -> None:
    inbox = tmp_path / "決裁済"
    inbox.mkdir()
    for i in range(5):
        (inbox / f"通知-{i}.pdf").write_bytes(sample_pdf(1 + i % 2))
    (inbox / "メモ.txt").write_text("not a PDF, and not named *.pdf: left alone")
    out = tmp_path / "sealed"

    done = inkless("seal", str(inbox), "--as", "sato", "--at", "400,100", "--out", str(out),
                   "--workers", workers, "--data", str(node_dir))

    assert done.returncode == 0, done.stderr
    sealed = sorted(out.iterdir())
    assert [p.name for p in sealed] == sorted(f"通知-{i}.pdf" for i in range(5))
    assert set(_verdicts(node_dir, sealed).values()) == {Indication.PASSED}
    # One progress line per file, counting up to the total, and a summary.
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == [f"[{n}/5" for n in range(1, 6)]
    assert all("sealed →" in line for line in progress)
    assert "sealed 5 of 5 files as sato (personal)" in done.stdout


def test_a_bad_file_is_named_and_the_others_are_still_sealed(node_dir: Path, tmp_path: Path) -> None:
    good = [tmp_path / f"good-{i}.pdf" for i in range(3)]
    for path in good:
        path.write_bytes(sample_pdf(1))
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"this is not a PDF at all")
    out = tmp_path / "out"

    # Several files (not a folder), a broken one among them.
    done = inkless("seal", str(good[0]), str(broken), str(good[1]), str(good[2]), "--as", "sato",
                   "--at", "400,100", "--out", str(out), "--workers", "2", "--data", str(node_dir))

    assert done.returncode == 1
    assert "[" in done.stderr and "broken.pdf: FAILED: the file is not a PDF" in done.stderr
    assert "1 failed: broken.pdf" in done.stderr
    assert "sealed 3 of 4 files" in done.stdout
    assert not (out / "broken.pdf").exists()
    assert set(_verdicts(node_dir, [out / p.name for p in good]).values()) == {Indication.PASSED}


def test_a_batch_that_cannot_be_placed_changes_nothing(node_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "same.pdf").write_bytes(sample_pdf(1))
    (second / "same.pdf").write_bytes(sample_pdf(1))
    out = tmp_path / "out"

    clash = inkless("seal", str(first), str(second), "--as", "sato", "--at", "400,100", "--out", str(out),
                    "--data", str(node_dir))
    assert clash.returncode == 2 and "two files are named same.pdf" in clash.stderr

    missing = inkless("seal", str(first), str(tmp_path / "nowhere"), "--as", "sato", "--at", "400,100",
                      "--out", str(out), "--data", str(node_dir))
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr

    into_itself = inkless("seal", str(first), "--as", "sato", "--at", "400,100", "--out", str(first),
                          "--data", str(node_dir))
    assert into_itself.returncode == 2 and "is the folder being sealed" in into_itself.stderr
    assert not out.exists()
    assert sorted(p.name for p in first.iterdir()) == ["same.pdf"]


def test_an_approver_stamps_many_routes_at_once_and_a_bad_one_is_named(node_dir: Path, tmp_path: Path) -> None:
    import json

    from tests.helpers.route_docs import sample_pdf as route_pdf

    document = tmp_path / "出張命令.pdf"
    document.write_bytes(route_pdf(1))
    ids = []
    for _ in range(4):
        started = inkless("route", "start", str(document), "--as", "tanaka", "--step", "sato", "--title", "課長",
                          "--json", "--data", str(node_dir))
        assert started.returncode == 0, started.stderr
        ids.append(str(json.loads(started.stdout)["id"]))

    done = inkless("route", "approve", *ids, "999", "--as", "sato", "--workers", "2", "--data", str(node_dir))

    assert done.returncode == 1
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == [f"[{n}/5" for n in range(1, 6)]
    assert "route 999: FAILED" in done.stderr and "1 failed: route 999" in done.stderr
    assert "sato stamped 4 of 5 routes" in done.stdout
    node = build_node(load_settings(node_dir))
    try:
        assert node.routes is not None and node.sealing is not None
        for route_id in ids:
            assert node.routes.route(int(route_id)).state.value == "awaiting_office_seal"
            report = node.sealing.verify(node.routes.document(int(route_id)), actor="test")
            assert report.indication == Indication.PASSED
    finally:
        node.close()
