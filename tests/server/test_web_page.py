"""The web page end to end in a real headless Chromium (driven by Playwright)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ServerProcess
from tests.videos import moving_square_video

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def launch(playwright, *flags: str):
    """Headless Chromium as the tests drive it."""
    return playwright.chromium.launch(
        executable_path=chromium(), headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", *flags],
    )  # fmt: skip


@pytest.fixture(scope="module")
def page_server(tiny_checkpoint, tmp_path_factory):
    samples = tmp_path_factory.mktemp("samples")
    moving_square_video(samples / "square_moving.mp4", frames=40, seed=3)
    srv = ServerProcess(
        {
            "ALT_CHECKPOINT": str(tiny_checkpoint),
            "ALT_SAMPLES_DIR": str(samples),
            "ALT_MAX_LABELS": "3",
        }
    )
    yield srv, samples
    srv.stop()


def test_page_and_samples_are_served(page_server):
    srv, samples = page_server
    page = httpx.get(srv.url + "/")
    assert page.status_code == 200 and "Recognize" in page.text
    assert httpx.get(srv.url + "/static/app.js").status_code == 200
    assert httpx.get(srv.url + "/samples").json() == {"samples": ["square_moving.mp4"]}
    got = httpx.get(srv.url + "/samples/square_moving.mp4")
    assert got.content == (samples / "square_moving.mp4").read_bytes()
    assert httpx.get(srv.url + "/samples/..%2Fconfig.json").status_code == 404
    assert httpx.get(srv.url + "/samples/nope.mp4").status_code == 404
    icon = httpx.get(srv.url + "/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")


@pytest.mark.slow
@pytest.mark.skipif(
    chromium() is None,
    reason="no Chromium could be installed on this machine (apt package chromium)",
)
def test_upload_recognize_and_see_the_regions(page_server):
    from playwright.sync_api import sync_playwright

    srv, samples = page_server
    video = samples / "square_moving.mp4"
    expected = httpx.post(
        srv.url + "/recognize", files={"video": video.read_bytes()}, params={"explain": "regions"}
    ).json()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        page.goto(srv.url + "/")
        page.wait_for_selector("#sample-list button.sample")
        page.set_input_files("#file", str(video))
        page.click("#go")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        page.wait_for_function(
            "document.querySelectorAll('.frame canvas.overlay').length === 4", timeout=30_000
        )
        top = page.inner_text("#actions li:first-child .label")
        assert top == expected["actions"][0]["label"]
        chips = page.locator(".chip")
        shown = [e for e in expected["entities"] if e["score"] >= 0.005]  # no "0%" chips
        assert chips.count() == len(shown) and "%" in chips.first.inner_text()
        painted_js = """() => [...document.querySelectorAll('.frame canvas.overlay')].map(c => {
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })"""
        assert page.evaluate(painted_js) == [0, 0, 0, 0]  # nothing hovered: frames stay clear
        chips.first.hover()
        painted = page.evaluate(painted_js)
        assert [i for i, n in enumerate(painted) if n > 0] == shown[0]["frames"], painted
        # Chip text is dark on light colors and white on dark ones.
        contrast = page.evaluate(
            """() => [...document.querySelectorAll('.chip')].map(c => {
                 const rgb = s => s.match(/\\d+/g).slice(0, 3).map(Number);
                 const lum = ([r, g, b]) => (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
                 const st = getComputedStyle(c);
                 return Math.abs(lum(rgb(st.backgroundColor)) - lum(rgb(st.color))); })"""
        )
        assert min(contrast) > 0.35, contrast
        assert "knows" in page.inner_text("#domain")
        assert page.locator("#label-set option").count() == 5  # the model's own + 4 named sets
        frame_pixels = page.evaluate(
            """() => { const c = document.querySelector('.frame canvas:not(.overlay)');
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 0) n++; return n; }"""
        )
        assert frame_pixels > 0, "the sampled frame was not drawn"
        page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)
        # A server error reaches the user as a readable message, with no stale answer under it.
        page.fill("#labels", "a,b,c,d")
        page.click("#go")
        page.wait_for_selector("#error:not([hidden])")
        assert page.inner_text("#error") == "4 labels given; the limit is 3"
        assert page.locator("#result").is_hidden()
        page.fill("#labels", "")
        page.set_input_files("#file", {"name": "x.mp4", "mimeType": "video/mp4",
                                       "buffer": b"not a video at all" * 10})  # fmt: skip
        page.click("#go")
        page.wait_for_function("document.querySelector('#error').innerText.includes('readable')")
        assert "Errno" not in page.inner_text("#error")
        browser.close()


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    import json

    from media import write_video
    from tests.conftest import DEFAULT_CHECKPOINT
    from training.generate import render_timeline

    labels = json.loads((DEFAULT_CHECKPOINT / "labels.json").read_text())
    frames, _ = render_timeline(labels[:4], 10.0, seed=5)
    path = tmp_path_factory.mktemp("long") / "four_actions.mp4"
    write_video(path, frames)
    return path


@pytest.mark.slow
@pytest.mark.skipif(
    chromium() is None,
    reason="no Chromium could be installed on this machine (apt package chromium)",
)
def test_a_long_video_runs_as_a_job_and_shows_a_timeline(long_video, tmp_path):
    """40 s: over the page's 20 s, so it goes to /jobs; the progress bar moves while the job
    runs (each chunk of windows is slowed down), then a lane per label, segments that seek
    the video when clicked, and the hovered segment's entities."""
    from playwright.sync_api import sync_playwright

    faults = Path(__file__).resolve().parents[1] / "media" / "faults"
    srv = ServerProcess({"PYTHONPATH": str(faults), "ALT_FAULT_CHUNK_DELAY_S": "0.4",
                         "ALT_MAX_BATCH_SIZE": "2", "ALT_JOBS_DIR": str(tmp_path)})  # fmt: skip
    try:
        with sync_playwright() as p:
            browser = launch(p, "--autoplay-policy=no-user-gesture-required")
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.goto(srv.url + "/")
            page.set_input_files("#file", str(long_video))
            page.click("#go")
            page.wait_for_selector("#job:not([hidden])", timeout=30_000)
            # Part of the way: the bar has moved and is not yet full.
            page.wait_for_function(
                "() => { const w = parseFloat(document.querySelector('#job-bar').style.width);"
                " return w > 0 && w < 100; }", timeout=60_000,
            )  # fmt: skip
            assert "Windows" in page.inner_text("#job-text")
            page.wait_for_selector("#timeline-card:not([hidden])", timeout=120_000)
            jobs = httpx.get(srv.url + "/jobs").json()["jobs"]
            assert len(jobs) == 1 and jobs[0]["state"] == "succeeded"
            result = httpx.get(srv.url + f"/jobs/{jobs[0]['id']}").json()["result"]
            lanes = page.locator(".lane")
            nulls = any(s["label"] is None for s in result["timeline"])
            assert lanes.count() == len(result["summary"]) + nulls
            assert page.locator(".segment").count() == len(result["timeline"])
            first_lane = result["summary"][0]["label"]
            assert page.inner_text(".lane-name >> nth=0").startswith(first_lane)
            # A click seeks the video to the segment; a hover names its entities.
            target = max(result["timeline"], key=lambda s: s["start_s"])
            bar = page.locator(f".segment[data-start='{target['start_s']:g}']").first
            bar.click()
            page.wait_for_function(
                f"Math.abs(document.querySelector('#viewer').currentTime - {target['start_s']}) < 0.6",
                timeout=10_000,
            )
            info = page.inner_text("#segment-info")
            assert (target["label"] or "none of the labels") in info
            assert all(e["name"] in info for e in target["entities"])
            page.screenshot(path=str(ARTIFACTS / "web-timeline.png"), full_page=True)
            browser.close()
    finally:
        srv.stop()


@pytest.mark.slow
@pytest.mark.skipif(
    chromium() is None,
    reason="no Chromium could be installed on this machine (apt package chromium)",
)
def test_the_library_view_indexes_relabels_and_plays_a_searched_moment(long_video, tmp_path):
    """A video added to the library is listed; opening it draws its stored timeline; the
    labels changed and Relabel redraws it from the stored windows; a search lists moments
    whose hover names the entities and whose click plays the moment."""
    from playwright.sync_api import sync_playwright

    srv = ServerProcess({"ALT_JOBS_DIR": str(tmp_path), "ALT_MAX_BATCH_SIZE": "4"})
    try:
        with sync_playwright() as p:
            browser = launch(p, "--autoplay-policy=no-user-gesture-required")
            page = browser.new_page(viewport={"width": 1100, "height": 1200})
            page.goto(srv.url + "/")
            page.set_input_files("#file", str(long_video))
            page.click("#add")
            page.wait_for_selector("#videos button:not([disabled])", timeout=120_000)
            assert page.inner_text("#videos li").startswith("four_actions.mp4 succeeded")
            page.wait_for_selector("#timeline-card:not([hidden])", timeout=30_000)
            videos = httpx.get(srv.url + "/videos").json()["videos"]
            assert len(videos) == 1
            vid = videos[0]["id"]
            stored = httpx.get(srv.url + f"/videos/{vid}/timeline").json()
            assert page.locator(".segment").count() == len(stored["timeline"])
            assert page.locator("#relabel").is_visible()
            # Relabelled with two labels: every lane is one of them (or "none of these").
            page.fill("#labels", "jumping,waving")
            page.click("#relabel")
            page.wait_for_function(
                "[...document.querySelectorAll('.lane-name')].every(n => "
                "/^(jumping|waving|none)/.test(n.innerText))", timeout=10_000,
            )  # fmt: skip
            relabelled = httpx.get(
                srv.url + f"/videos/{vid}/timeline", params={"labels": "jumping,waving"}
            ).json()
            assert page.locator(".segment").count() == len(relabelled["timeline"])
            # Search, hover a hit, click it: the stored video plays from the moment.
            page.fill("#labels", "")
            query = stored["summary"][-1]["label"]
            page.fill("#query", query)
            page.click("#search")
            page.wait_for_selector("#hits li.hit", timeout=10_000)
            hits = httpx.get(srv.url + "/search", params={"q": query, "k": 10}).json()["results"]
            assert page.locator("#hits li.hit").count() == len(hits)
            page.hover("#hits li.hit >> nth=0")
            assert all(e["name"] in page.inner_text("#hit-info") for e in hits[0]["entities"])
            page.click("#hits li.hit >> nth=0")
            page.wait_for_function(
                "document.querySelector('#viewer').src.endsWith('/media') && "
                f"Math.abs(document.querySelector('#viewer').currentTime - {hits[0]['start_s']}) < 0.6",
                timeout=10_000,
            )  # fmt: skip
            page.screenshot(path=str(ARTIFACTS / "web-library.png"), full_page=True)
            browser.close()
    finally:
        srv.stop()


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="no Chromium could be installed on this machine")
def test_a_live_stream_is_watched_from_the_page_and_its_timeline_grows(tiny_checkpoint, tmp_path):
    """A source typed in and watched: the stream is listed, its segments are drawn as their
    events arrive, hovering one names its entities, the events are logged, and the state
    follows the source (a file at its own rate: live, then stopped)."""
    from playwright.sync_api import sync_playwright

    video = moving_square_video(tmp_path / "cam.mp4", frames=175, seed=4)  # 7 s
    srv = ServerProcess({"ALT_CHECKPOINT": str(tiny_checkpoint), "ALT_JOBS_DIR": str(tmp_path / "jobs"),
                         "ALT_STREAMS_ALLOW_PRIVATE": "1"})  # fmt: skip
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1100, "height": 1200})
            page.goto(srv.url + "/")
            page.fill("#labels", "surfing,juggling")
            page.fill("#stream-url", f"file://{video}")
            page.click("#watch")
            page.wait_for_selector("#stream-card:not([hidden])", timeout=10_000)
            page.wait_for_selector("#stream-lanes .segment", timeout=20_000)  # while it plays
            (stream,) = httpx.get(srv.url + "/streams").json()["streams"]
            assert stream["labels"] == ["surfing", "juggling"]
            assert page.inner_text("#streams li").startswith(f"file://{video}")
            page.wait_for_function("document.querySelector('#stream-state').innerText.startsWith('stopped')",
                                   timeout=30_000)  # fmt: skip
            recent = httpx.get(srv.url + f"/streams/{stream['id']}").json()["recent"]
            assert page.locator("#stream-lanes .segment").count() == len(recent) >= 1
            assert {n.inner_text() for n in page.locator("#stream-lanes .lane-name").all()} == {
                s["label"] for s in recent
            }
            page.hover("#stream-lanes .segment >> nth=0")
            assert all(
                e["name"] in page.inner_text("#stream-info") for e in recent[0]["entities"][:2]
            )
            assert page.locator("#stream-events li").count() >= 2  # began, ended
            page.screenshot(path=str(ARTIFACTS / "web-stream.png"), full_page=True)
            browser.close()
    finally:
        srv.stop()
