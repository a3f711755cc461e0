"""Submissions in: LMS download zips, plain zips and folders; unique learner names; zips that try to escape."""

from __future__ import annotations

import datetime as dt
import stat
import sys
import zipfile
from pathlib import Path

import pytest

from streamcourse import intake, safezip

sys.path.insert(0, str(Path(__file__).parent / "grading_fixtures"))
import lms_zips

RIGHT = lms_zips.notebook()
BLANK = lms_zips.notebook(lms_zips.BLANK)


def collect(tmp_path: Path, *paths: Path) -> intake.Intake:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return intake.collect(paths, work)


def test_canvas_download_names_learners_by_name_and_id(tmp_path: Path) -> None:
    zip_path = lms_zips.canvas(
        tmp_path / "canvas.zip",
        [
            ("smithbob", "1234", False, RIGHT),
            ("smithbob", "5678", False, BLANK),
            ("anon_x7Yq2", "anon_x7Yq2", False, RIGHT),
        ],
    )
    with zipfile.ZipFile(zip_path, "a") as archive:  # anonymous grading: no name, only anon_<id>
        archive.writestr("anon_b3c4d_90009_lab01_generators.ipynb", RIGHT)
    found = collect(tmp_path, zip_path).submissions
    assert [(s.learner, s.lms, s.lms_id) for s in found] == [
        ("anon_b3c4d_anon_b3c4d", "canvas", "anon_b3c4d"),
        ("anon_x7Yq2_anon_x7Yq2", "canvas", "anon_x7Yq2"),
        ("smithbob_1234", "canvas", "1234"),
        ("smithbob_5678", "canvas", "5678"),
    ]
    assert found[2].origin == "canvas.zip:smithbob_1234_90000_lab01_generators.ipynb"
    assert found[2].submitted_at is None, "Canvas zips carry no submission time"


def test_canvas_late_mark_is_kept_for_the_late_policy(tmp_path: Path) -> None:
    zip_path = lms_zips.canvas(tmp_path / "canvas.zip", [("leeann", "42", True, RIGHT), ("kimjo", "43", False, RIGHT)])
    late = {s.learner: s.lms_late for s in collect(tmp_path, zip_path).submissions}
    assert late == {"leeann_42": True, "kimjo_43": False}


@pytest.mark.parametrize("folders", [True, False], ids=["in folders", "flat"])
def test_moodle_download_names_learners_by_full_name_and_participant_id(tmp_path: Path, folders: bool) -> None:
    zip_path = lms_zips.moodle(
        tmp_path / "moodle.zip", [("Bob Smith", "1234567", RIGHT), ("Bob Smith", "7654321", BLANK)], folders
    )
    found = collect(tmp_path, zip_path).submissions
    assert [(s.learner, s.display, s.lms_id, s.lms) for s in found] == [
        ("Bob Smith_1234567", "Bob Smith", "1234567", "moodle"),
        ("Bob Smith_7654321", "Bob Smith", "7654321", "moodle"),
    ]
    assert all(s.path.name.endswith("lab01_generators.ipynb") for s in found)
    assert all(s.submitted_at is None for s in found), "Moodle zips carry no submission time"


def test_gradescope_export_reads_submitters_and_submission_time(tmp_path: Path) -> None:
    zip_path = lms_zips.gradescope(
        tmp_path / "gs.zip",
        [
            ("Ada Lovelace", "s001", "2025-03-02 09:30:00.123456789 +01:00", RIGHT),
            ("Alan Turing", "s002", "2025-03-01 10:00:00.000000000 -05:00", BLANK),
        ],
    )
    found = collect(tmp_path, zip_path).submissions
    assert [(s.learner, s.email) for s in found] == [
        ("Ada Lovelace_s001", "s001@example.edu"),
        ("Alan Turing_s002", "s002@example.edu"),
    ]
    assert found[0].submitted_at == dt.datetime(2025, 3, 2, 8, 30, 0, 123456, tzinfo=dt.UTC)
    assert found[1].submitted_at == dt.datetime(2025, 3, 1, 15, 0, tzinfo=dt.UTC)


def test_plain_zip_of_learner_folders_takes_the_entry_timestamps(tmp_path: Path) -> None:
    zip_path = lms_zips.write_zip(
        tmp_path / "class.zip",
        {"class/alice/lab01_generators.ipynb": RIGHT, "class/bob/lab01_generators.ipynb": BLANK},
        when=dt.datetime(2025, 3, 1, 12, 30),
    )
    found = collect(tmp_path, zip_path).submissions
    assert [(s.learner, s.lms, s.origin) for s in found] == [
        ("alice", "zip", "class.zip:class/alice/lab01_generators.ipynb"),
        ("bob", "zip", "class.zip:class/bob/lab01_generators.ipynb"),
    ]
    assert found[0].submitted_at == dt.datetime(2025, 3, 1, 12, 30).astimezone()
    assert "zip entry" in found[0].time_source


def test_folders_bob_and_bob_bang_are_two_learners(tmp_path: Path) -> None:
    for name in ("bob", "bob!", "Bob"):
        (tmp_path / "class" / name).mkdir(parents=True)
        (tmp_path / "class" / name / "lab01_generators.ipynb").write_bytes(lms_zips.notebook(marker=name))
    names = sorted(s.learner for s in collect(tmp_path, tmp_path / "class").submissions)
    assert names == ["Bob", "bob!", "bob~2"], "Bob and bob are one folder on macOS: the second gets ~2"


def test_learner_names_lose_control_characters_and_stay_unique(tmp_path: Path) -> None:
    for name in ("eve\x1b[2J\x1b]0;pwned\x07", "eve", "mal\u202eory"):
        (tmp_path / "class" / name).mkdir(parents=True)
        (tmp_path / "class" / name / "lab01_generators.ipynb").write_bytes(lms_zips.notebook(marker=name))
    names = sorted(s.learner for s in collect(tmp_path, tmp_path / "class").submissions)
    assert names == ["eve", "eve~2", "malory"]
    assert all(ch.isprintable() for n in names for ch in n)


def test_an_identical_second_copy_is_graded_once_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "class" / "carol"
    folder.mkdir(parents=True)
    (folder / "lab01_generators.ipynb").write_bytes(RIGHT)
    (folder / "lab01_generators (1).ipynb").write_bytes(RIGHT)
    found = collect(tmp_path, tmp_path / "class")
    assert len(found.submissions) == 1
    assert any("identical copy" in n and "carol" in n for n in found.notes)


def test_files_that_are_not_notebooks_and_zips_inside_are_left_out_and_reported(tmp_path: Path) -> None:
    zip_path = lms_zips.write_zip(
        tmp_path / "class.zip",
        {
            "alice/lab01_generators.ipynb": RIGHT,
            "alice/report.pdf": b"%PDF",
            "bob/lab01.zip": b"PK",
            "bob/.ipynb_checkpoints/x.ipynb": RIGHT,
        },
    )
    found = collect(tmp_path, zip_path)
    assert [s.learner for s in found.submissions] == ["alice"]
    notes = "\n".join(found.notes)
    assert "'bob/lab01.zip' is a zip inside the download and was not opened" in notes
    assert "1 file(s) that are not notebooks were left out: 'alice/report.pdf'" in notes


def test_a_notebook_a_moodle_zip_does_not_name_is_reported_not_graded(tmp_path: Path) -> None:
    zip_path = lms_zips.moodle(tmp_path / "moodle.zip", [("Ann Lee", "11", RIGHT)])
    with zipfile.ZipFile(zip_path, "a") as archive:
        archive.writestr("stray_upload.ipynb", RIGHT)
    found = collect(tmp_path, zip_path)
    assert [s.learner for s in found.submissions] == ["Ann Lee_11"]
    assert any("'stray_upload.ipynb' is not named the way Moodle names submissions" in n for n in found.notes)


# --------------------------------------------------------------------------- zips that try to escape or explode


def _zip_with(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return path


def test_zip_members_that_leave_the_folder_are_skipped_and_reported(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("alice/link.ipynb")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    zip_path = _zip_with(
        tmp_path / "evil.zip",
        [
            ("../escaped.ipynb", RIGHT),
            ("/tmp/absolute.ipynb", RIGHT),
            ("a/../../up.ipynb", RIGHT),
            ("C:/windows.ipynb", RIGHT),
            ("back\\slash.ipynb", RIGHT),
            (link, b"/etc/passwd"),
            ("alice/lab01_generators.ipynb", RIGHT),
        ],
    )
    found = collect(tmp_path, zip_path)
    assert [s.learner for s in found.submissions] == ["alice"]
    notes = "\n".join(found.notes)
    for words in [
        "'../escaped.ipynb': its path leads out of the folder",
        "'/tmp/absolute.ipynb': it has an absolute path",
        "'a/../../up.ipynb': its path leads out",
        "'C:/windows.ipynb': it has an absolute path",
        "'back\\\\slash.ipynb': its name holds a backslash",
        "'alice/link.ipynb': it is a symbolic link",
    ]:
        assert words in notes
    assert not (tmp_path / "escaped.ipynb").exists() and not Path("/tmp/absolute.ipynb").exists()
    assert not any(p.is_symlink() for p in (tmp_path / "work").rglob("*"))


def test_a_member_bigger_than_the_limit_is_skipped_and_the_rest_unpacked(tmp_path: Path) -> None:
    zip_path = _zip_with(tmp_path / "big.zip", [("a/huge.ipynb", b" " * (2 << 20)), ("b/lab01.ipynb", RIGHT)])
    result = safezip.unpack(zip_path, tmp_path, lambda n: True, safezip.ZipLimits(max_file_mb=1))
    assert [m.name for m in result.members] == ["b/lab01.ipynb"]
    assert "'a/huge.ipynb': it is bigger than 1 MB" in result.skipped[0]
    assert not (tmp_path / "a" / "huge.ipynb").exists()


def test_a_member_that_inflates_like_a_zip_bomb_is_skipped(tmp_path: Path) -> None:
    zip_path = _zip_with(tmp_path / "bomb.zip", [("a/bomb.ipynb", b"\0" * (12 << 20))])
    result = safezip.unpack(zip_path, tmp_path / "x", lambda n: True, safezip.ZipLimits(max_file_mb=64))
    assert result.members == [] and "inflates more than 200 times its packed size (a zip bomb?)" in result.skipped[0]


def test_an_archive_that_unpacks_past_the_total_limit_is_refused(tmp_path: Path) -> None:
    zip_path = _zip_with(tmp_path / "many.zip", [(f"l{n}/lab01.ipynb", bytes(range(256)) * 3000) for n in range(4)])
    with pytest.raises(safezip.ZipError, match="unpacks to more than 1 MB"):
        safezip.unpack(zip_path, tmp_path / "x", lambda n: True, safezip.ZipLimits(max_total_mb=1, max_ratio=10_000))


def test_an_archive_with_too_many_members_is_refused_before_unpacking(tmp_path: Path) -> None:
    zip_path = _zip_with(tmp_path / "count.zip", [(f"f{n}.ipynb", b"{}") for n in range(30)])
    with pytest.raises(safezip.ZipError, match="holds 30 entries, more than the 20"):
        safezip.unpack(zip_path, tmp_path / "x", lambda n: True, safezip.ZipLimits(max_members=20))
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_a_file_that_is_not_a_zip_gives_a_clear_message(tmp_path: Path) -> None:
    fake = tmp_path / "download.zip"
    fake.write_text("<html>session expired</html>")
    with pytest.raises(
        intake.IntakeError, match="download.zip is not a zip archive that can be read.*download it again"
    ):
        collect(tmp_path, fake)
