// The library on the page: add the chosen video (indexed once), list the stored videos,
// redraw a stored video's timeline for the labels above (no decoding), search moments by
// text and play them. Uses app.js's helpers ($, authHeaders, showError, failure, ...).
"use strict";
let stored = null;  // the id of the stored video whose timeline is on screen

async function loadVideos() {
  const list = $("videos");
  const resp = await fetch("/videos?limit=200", { headers: authHeaders() });
  if (!resp.ok) {
    list.textContent = `The library is unavailable: ${(await resp.json()).detail}`;
    return;
  }
  list.innerHTML = "";
  for (const video of (await resp.json()).videos) {
    const item = document.createElement("li");
    const open = document.createElement("button");
    open.className = "sample";
    open.textContent = video.name;
    open.dataset.id = video.id;
    open.disabled = video.state !== "succeeded";
    open.onclick = () => showStored(video.id);
    const facts = video.video ? `, ${video.video.duration_s.toFixed(0)} s` : "";
    item.append(open, ` ${video.state}${facts}`);
    list.appendChild(item);
  }
}

function labelsAsked() {
  return $("labels").value.trim() || $("label-set").value;
}

async function showStored(id, seekTo) {
  showError("");
  stored = id;
  const params = new URLSearchParams();
  if (labelsAsked()) params.set("labels", labelsAsked());
  try {
    const resp = await fetch(`/videos/${id}/timeline?${params}`, { headers: authHeaders() });
    if (!resp.ok) throw await failure(resp);
    last = await resp.json();
    $("result").hidden = true;
    renderTimeline(last, `/videos/${id}/media`);
    if (seekTo != null) {
      const viewer = $("viewer");
      const go = () => { viewer.currentTime = seekTo; viewer.play().catch(() => {}); };
      if (viewer.readyState >= 1) go(); else viewer.addEventListener("loadedmetadata", go, { once: true });
    }
  } catch (err) {
    showError(err.message);
  }
}

async function addVideo() {
  if (!chosen) return;
  showError("");
  $("add").disabled = true;
  $("job").hidden = false;
  showProgress({ state: "queued", progress: { fraction: 0 } });
  const body = new FormData();
  body.append("video", chosen, chosen.name || "video.mp4");
  const name = encodeURIComponent(chosen.name || "video");
  try {
    const resp = await fetch(`/videos?name=${name}`, { method: "POST", body, headers: authHeaders() });
    if (!resp.ok) throw await failure(resp);
    const id = (await resp.json()).id;
    await follow(`/jobs/${id}`);  // indexing is a job: its progress and events
    const done = await (await fetch(`/videos/${id}`, { headers: authHeaders() })).json();
    if (done.state !== "succeeded") throw new Error(done.error ? done.error.detail : `indexing ${done.state}`);
    await loadVideos();
    await showStored(id);
  } catch (err) {
    showError(err.message);
  } finally {
    $("job").hidden = true;
    $("add").disabled = false;
  }
}

function describeHit(hit) {
  const seen = hit.entities.map((e) => `${e.name} ${(e.score * 100).toFixed(0)}%`);
  return `${hit.name}, ${hit.start_s.toFixed(1)}–${hit.end_s.toFixed(1)} s: similarity ` +
    `${hit.similarity.toFixed(3)}. Aligned: ${seen.join(" · ") || "nothing"}.`;
}

async function search() {
  const q = $("query").value.trim();
  if (!q) return;
  showError("");
  const hits = $("hits");
  try {
    const resp = await fetch("/search?" + new URLSearchParams({ q, k: "10" }), { headers: authHeaders() });
    if (!resp.ok) throw await failure(resp);
    const found = (await resp.json()).results;
    hits.innerHTML = found.length ? "" : "<li>nothing indexed yet</li>";
    for (const hit of found) {
      const item = document.createElement("li");
      item.className = "hit";
      item.textContent = `${hit.name}: ${hit.start_s.toFixed(1)}–${hit.end_s.toFixed(1)} s (${hit.similarity.toFixed(2)})`;
      item.dataset.video = hit.video_id;
      item.dataset.start = hit.start_s;
      item.onmouseenter = () => { $("hit-info").textContent = describeHit(hit); };
      item.onclick = () => showStored(hit.video_id, hit.start_s);
      hits.appendChild(item);
    }
  } catch (err) {
    showError(err.message);
  }
}

$("add").addEventListener("click", addVideo);
$("search").addEventListener("click", search);
$("query").addEventListener("keydown", (e) => { if (e.key === "Enter") search(); });
$("relabel").addEventListener("click", () => stored && showStored(stored));
loadVideos();
