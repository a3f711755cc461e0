"""The course as a learner sees it: every lesson run in JupyterLab, in Chromium.

One JupyterLab for the module, started as ``make lab`` starts it (see
``jupyter_page``), with ``STREAMCOURSE_SPEED=20`` in its environment so every
kernel runs the lessons fast. Each lesson is opened in its own page and run
once with Run ▸ Run All Cells; the tests below read what that run showed.

Lesson 06 runs at learner pace (its kernel is set to speed 1 before Run All):
its token view is clicked while it streams, and "at most two tokens after
Stop" means something only when tokens come 60 ms apart, not 3 ms. During the
run the test clicks Stop IN THE PAGE and then asks the lesson's kernel for the
embedded model's record of that generation.

Screenshots of each lesson's key figure are saved under ``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from jupyter_page import REPO, Lab, LabPage, Notebook, click_time, running_at, running_lab

from streamcourse import notebooks, pacing
from streamcourse.checking import Namespace, check_report, execute_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LESSONS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TOKEN_LESSON = "notebooks/06_token_streaming.ipynb"
LAB, EXERCISE, WRONG = "labs/lab03_sse_format.ipynb", "lab03.format_event", "one_line_f_string.py"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("jupyterlab"), {pacing.ENV: pacing.CHECKING_SPEED}) as running:
        yield running


# --------------------------------------------------------------------------- one run per lesson


@dataclass
class TokenViewSeen:
    """Lesson 06's token view, watched from the page while it streamed, and the model's record after."""

    texts: list[str] = field(default_factory=list)  # the view's text at each look before Stop
    clicked_at: float = 0.0  # when the page saw the click on Stop (time.monotonic)
    button_disabled_after: float = 0.0  # seconds from the click until the view said it had ended
    shown_after_stop: str = ""
    running_at_click: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LessonRun:
    path: str
    seconds: float
    saved: dict[str, Any]  # the notebook as the page saved it: outputs included
    prompts: list[str]  # each code cell's prompt after the run, "[7]:"
    images: list[dict[str, Any]]  # every <img> of an output: loaded? how wide?
    figures_as_text: list[str]  # matplotlib figures shown as "<Figure size ...>" text instead of a picture
    screenshot: Path | None
    wire_rows: list[list[str]] = field(default_factory=list)  # lesson 06's wire view: [arrived, bytes, events]
    token_view: TokenViewSeen | None = None


def visible_texts(locator: Any) -> list[str]:
    """Each element's text as shown (line breaks included): scrolled into view first, since
    JupyterLab skips rendering cells out of sight and hidden text has no layout."""
    return locator.evaluate_all("els => els.map(e => { e.scrollIntoView({block: 'nearest'}); return e.innerText; })")


def token_view(panel: Any) -> tuple[Any, Any, Any]:
    """The TokenView widget in ``panel``, its Stop button and its text."""
    box = panel.locator(".widget-vbox").filter(has=panel.page.locator("button.widget-button")).first
    return box, box.locator("button.widget-button").first, box.locator(":scope > .widget-html .widget-html-content")


def stop_the_token_view_mid_stream(notebook: Notebook) -> TokenViewSeen:
    """While Run All runs: watch lesson 06's token view fill, then press its Stop button."""
    seen = TokenViewSeen()
    _, stop, text = token_view(notebook.panel)
    stop.wait_for(state="attached", timeout=120_000)  # out of sight, maybe: JupyterLab renders cells lazily
    notebook.page.wait_for_function("b => !b.disabled", arg=stop.element_handle(), timeout=60_000, polling=20)
    # the view started reading the stream
    deadline = time.monotonic() + 30
    while len({t for t in seen.texts if t}) < 4 and time.monotonic() < deadline:  # a few tokens in, not all
        seen.texts.append(text.text_content())
        if stop.is_disabled():  # the reply ended before we could press Stop: the test below says so
            break
        notebook.page.wait_for_timeout(15)
    seen.clicked_at = click_time(stop)
    notebook.page.wait_for_function("b => b.disabled", arg=stop.element_handle(), timeout=10_000, polling=10)
    seen.button_disabled_after = time.monotonic() - seen.clicked_at
    seen.shown_after_stop = text.text_content()
    return seen


def key_figure(notebook: Notebook) -> Any:
    """The first plot of a lesson, or — where it draws none — its tallest output."""
    images = notebook.panel.locator(".jp-OutputArea-output img")
    if images.count():
        return images.first
    outputs = notebook.panel.locator(".jp-OutputArea-output")
    heights = outputs.evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
    return outputs.nth(max(range(len(heights)), key=heights.__getitem__)) if heights else None


def observe(notebook: Notebook, seconds: float, screenshot: Any) -> LessonRun:
    """What a settled lesson shows: prompts, pictures, figures left as text; its key figure saved."""
    page = notebook.panel
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").evaluate_all("ps => ps.map(p => p.textContent)")
    images = page.locator(".jp-OutputArea-output img").evaluate_all(
        "imgs => imgs.map(i => { i.scrollIntoView(); return {complete: i.complete, width: i.naturalWidth}; })"
    )
    as_text = [t for t in visible_texts(page.locator(".jp-OutputArea-output")) if "<Figure size" in t]
    figure = key_figure(notebook)
    shot = screenshot(figure, Path(notebook.path).stem) if figure is not None else None
    return LessonRun(notebook.path, seconds, notebook.saved(), prompts, images, as_text, shot)


def run_lesson(tab: LabPage, path: str, screenshot: Any) -> LessonRun:
    """Open the lesson, Run All, and keep what the page showed (lesson 06: press Stop on the way)."""
    notebook = tab.open(path)
    token_lesson = path == TOKEN_LESSON
    try:
        if token_lesson:
            notebook.in_kernel(f"import os; os.environ[{pacing.ENV!r}] = '1'")  # learner pace, see the docstring
        started = time.monotonic()
        notebook.run_all()
        seen = stop_the_token_view_mid_stream(notebook) if token_lesson else None
        notebook.wait_until_settled()
        run = observe(notebook, time.monotonic() - started, screenshot)
        if seen is not None:
            rows = notebook.panel.locator(".widget-html table tr").filter(has=notebook.page.locator("td"))
            run.wire_rows = [visible_texts(row.locator("td")) for row in rows.all()]
            seen.running_at_click = running_at(notebook.generations(), seen.clicked_at)
            screenshot(token_view(notebook.panel)[0], "06_token_view_after_stop")
            run.token_view = seen
        stderr = [
            o["text"][:200] for c in run.saved["cells"] for o in c.get("outputs", []) if o.get("name") == "stderr"
        ]
        print(
            f"{path}: Run All took {run.seconds:.1f} s; {len(run.prompts)} code cells run; {len(run.images)} plot(s); "
            f"{len(stderr)} stderr output(s) {stderr}; screenshot {run.screenshot}"
        )
        return run
    finally:
        notebook.close()


@pytest.fixture(scope="module")
def lesson_runs(tab: LabPage, screenshot: Any) -> Any:
    runs: dict[str, LessonRun | Exception] = {}

    def get(path: Path | str) -> LessonRun:
        name = str(Path(path).relative_to(REPO)) if Path(path).is_absolute() else str(path)
        if name not in runs:
            try:
                runs[name] = run_lesson(tab, name, screenshot)
            except Exception as exc:  # noqa: BLE001 - kept: each test of this lesson reports it, none runs it again
                runs[name] = exc
        if isinstance(runs[name], Exception):
            raise runs[name]
        return runs[name]

    return get


def _id(path: Path) -> str:
    return path.name


def error_outputs(saved: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [
        (i, out["ename"], out["evalue"])
        for i, cell in enumerate(saved["cells"])
        for out in cell.get("outputs", [])
        if out["output_type"] == "error"
    ]


# --------------------------------------------------------------------------- every lesson


@pytest.mark.parametrize("path", LESSONS, ids=_id)
def test_run_all_in_jupyterlab_runs_every_cell_without_an_error(lesson_runs: Any, path: Path) -> None:
    run = lesson_runs(path)
    assert error_outputs(run.saved) == [], f"{run.path}: cells showed errors in JupyterLab: {error_outputs(run.saved)}"
    unrun = [i for i, prompt in enumerate(run.prompts) if not re.fullmatch(r"\[\d+\]:", prompt.strip())]
    assert unrun == [], f"{run.path}: code cells {unrun} (counting code cells only) never ran: {run.prompts}"


@pytest.mark.parametrize("path", LESSONS, ids=_id)
def test_every_plot_renders_as_an_image(lesson_runs: Any, path: Path) -> None:
    run = lesson_runs(path)
    drawn = sum("image/png" in out.get("data", {}) for cell in run.saved["cells"] for out in cell.get("outputs", []))
    assert run.figures_as_text == [], f"{run.path}: figures shown as text, not pictures: {run.figures_as_text}"
    assert len(run.images) == drawn, (
        f"{run.path}: the kernel sent {drawn} plots, the page shows {len(run.images)} images"
    )
    assert all(img["complete"] and img["width"] > 0 for img in run.images), (
        f"{run.path}: images not drawn: {run.images}"
    )


def test_lesson_00_shows_its_measured_timeline_as_a_picture(lesson_runs: Any) -> None:
    """The plot test above has something to look at: the course opens on a measured plot."""
    assert lesson_runs(LESSONS[0]).images, "lesson 00 should show the normal-vs-streamed timeline"


# --------------------------------------------------------------------------- lesson 06's widgets


def test_the_token_view_shows_tokens_arriving(lesson_runs: Any) -> None:
    seen = lesson_runs(TOKEN_LESSON).token_view
    shown = [t for t in dict.fromkeys(seen.texts) if t]
    assert len(shown) >= 3, f"the view should fill piece by piece; it showed {shown}"
    assert all(later.startswith(earlier) for earlier, later in pairwise(shown)), f"text should only grow: {shown}"


def test_stop_clicked_in_the_page_stops_the_model(lesson_runs: Any) -> None:
    seen = lesson_runs(TOKEN_LESSON).token_view
    assert len(seen.running_at_click) == 1, (
        f"one generation should be running when Stop is clicked: {seen.running_at_click}"
    )
    gen = seen.running_at_click[0]
    late = sum(t > seen.clicked_at for t in gen["token_times"])
    closed = gen["closed_at"] - seen.clicked_at if gen["closed_at"] is not None else None
    print(
        f"Stop in the page: the view ended {seen.button_disabled_after * 1000:.0f} ms after the click; the model closed "
        f"{'never' if closed is None else f'{closed * 1000:.0f} ms'} after it, {late} token(s) after the click, "
        f"{len(gen['token_times'])} made"
    )
    assert not gen["finished"] and closed is not None, "Stop should close the model's generation before its end"
    assert late <= 2, f"the model made {late} tokens after Stop was clicked (at most 2 expected)"
    assert gen["text"].startswith(seen.shown_after_stop.strip()), "the view shows what the model said, up to Stop"


def test_the_wire_view_shows_raw_bytes_beside_parsed_events(lesson_runs: Any) -> None:
    rows = lesson_runs(TOKEN_LESSON).wire_rows
    assert len(rows) >= 3, f"one row per chunk of a streamed reply; got {rows}"
    assert all(re.fullmatch(r"b(['\"]).*\1", raw, re.S) for _, raw, _ in rows), (
        "the middle column shows bytes as received"
    )
    raw = "".join(raw for _, raw, _ in rows)
    events = [line.split(" ", 1)[0] for *_, shown in rows for line in shown.splitlines() if line]
    assert events, "the right column shows the events the chunks completed"
    missing = {name for name in events if name not in ("comment", "message") and f"event: {name}" not in raw}
    assert not missing, f"each parsed event should be in the bytes beside it: {missing} are not"


# --------------------------------------------------------------------------- a lab's check()


def exercise_cell(path: Path, exercise: str) -> tuple[int, int, str]:
    """Index of the exercise cell, of its check cell, and the exercise code, in ``path``."""
    nb = notebooks.read(path)
    index = next(i for i, c in enumerate(nb.cells) if notebooks.cell_info(c).get("exercise") == exercise)
    check = next(i for i in range(index + 1, len(nb.cells)) if notebooks.is_check_cell(nb.cells[i].source))
    return index, check, nb.cells[index].source


def expected_lines(code: str) -> list[str]:
    """What check() shows for ``code`` in the lab, run here by the same engine: one line per check."""
    namespace: Namespace = execute_notebook(REPO / LAB, [code])
    return [
        squeeze(f"{'✔' if ok else '✘'} {name}" + ("" if ok else f"\n{message}"))
        for ok, name, message in check_report(EXERCISE, namespace).lines()
    ]


def squeeze(text: str) -> str:
    """Whitespace as HTML shows it: runs of spaces and line breaks become one space."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def lab_page(tab: LabPage) -> Iterator[Notebook]:
    index, _, _ = exercise_cell(REPO / LAB, EXERCISE)
    notebook = tab.open(LAB)
    notebook.run_all_above(index)
    notebook.wait_until_settled()
    yield notebook
    notebook.close()


def shown_by_check(notebook: Notebook, code: str) -> list[str]:
    """Type ``code`` into the exercise cell, run it and its check cell; the check's lines as the page shows them."""
    index, check, _ = exercise_cell(REPO / LAB, EXERCISE)
    notebook.type_into(index, code)
    notebook.run_selected(check - index + 1)
    notebook.wait_until_settled()
    output = notebook.cell(check).locator(".jp-OutputArea-output")
    shown = [squeeze(line) for line in visible_texts(output.locator("li"))]
    print(f"check({EXERCISE!r}) in the page: {sum(line.startswith('✔') for line in shown)} of {len(shown)} lines ✔")
    return shown


def test_a_wrong_answer_shows_which_checks_failed_in_the_checks_own_words(lab_page: Notebook, screenshot: Any) -> None:
    wrong = (REPO / "tests" / "labs" / "wrong" / EXERCISE / WRONG).read_text(encoding="utf-8")
    shown = shown_by_check(lab_page, wrong)
    screenshot(lab_page.cell(exercise_cell(REPO / LAB, EXERCISE)[1]), "lab03_check_of_a_wrong_answer")
    expected = expected_lines(wrong)
    assert any(line.startswith("✘") for line in expected), "the known wrong answer should fail a check"
    assert shown == expected, (
        f"the page should show each check, ✔ or ✘ with the check's message:\n{shown}\n!=\n{expected}"
    )


def test_a_right_answer_shows_every_check_passed(lab_page: Notebook, screenshot: Any) -> None:
    _, _, solution = exercise_cell(REPO / "solutions" / Path(LAB).name, EXERCISE)
    shown = shown_by_check(lab_page, solution)
    screenshot(lab_page.cell(exercise_cell(REPO / LAB, EXERCISE)[1]), "lab03_check_of_a_right_answer")
    assert shown and all(line.startswith("✔") for line in shown), f"every check should pass and say so: {shown}"
    assert shown == expected_lines(solution), "one line per check of the exercise, each named as the check is"
