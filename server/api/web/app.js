// ALT Serve page: upload, recognize, and draw the aligned entities over the sampled frames.
"use strict";
const $ = (id) => document.getElementById(id);
const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
  "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075"];
let chosen = null;      // the File (or Blob) to send
let last = null;        // the last answer

function choose(file, name) {
  chosen = file;
  $("add").disabled = false;
  const size = file.size < 1048576 ? `${Math.ceil(file.size / 1024)} KB` : `${(file.size / 1048576).toFixed(1)} MB`;
  $("drop-text").textContent = `${name || file.name} (${size})`;
  $("go").disabled = false;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
  if (message) {  // never leave an older answer under a new error
    $("result").hidden = true;
    $("timeline-card").hidden = true;
  }
}

function textColor(hex) {
  // Dark text on light chips, white on dark ones (relative luminance of the chip color).
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.55 ? "#1d1f23" : "#fff";
}

function authHeaders() {
  return $("key").value ? { Authorization: "Bearer " + $("key").value } : {};
}

// Videos longer than this go as a job and come back as a timeline.
const TIMELINE_FROM_S = 20;

function duration(file) {
  return new Promise((resolve) => {
    const probe = document.createElement("video");
    probe.preload = "metadata";
    probe.onloadedmetadata = () => { resolve(probe.duration); URL.revokeObjectURL(probe.src); };
    probe.onerror = () => resolve(0);  // the server decides what it is
    probe.src = URL.createObjectURL(chosen);
  });
}

async function recognize() {
  if (!chosen) return;
  $("timeline-card").hidden = true;
  if ((await duration(chosen)) > TIMELINE_FROM_S) return runJob();
  showError("");
  $("busy").hidden = false;
  $("go").disabled = true;
  const params = new URLSearchParams({ explain: "regions", top_k: "5" });
  const labels = $("labels").value.trim() || $("label-set").value;
  if (labels) params.set("labels", labels);
  const body = new FormData();
  body.append("video", chosen, chosen.name || "video.mp4");
  const headers = authHeaders();
  $("result").hidden = true;
  try {
    const resp = await fetch("/recognize?" + params, { method: "POST", body, headers });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      let detail = data.detail;
      if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
      if (resp.status === 401) $("key-box").open = true;
      throw new Error(detail || `${resp.status} ${resp.statusText}`);
    }
    last = data;
    await render(data);
  } catch (err) {
    showError(err.message.startsWith("Failed to fetch") ? "The server could not be reached." : err.message);
  } finally {
    $("busy").hidden = true;
    $("go").disabled = false;
  }
}

function seek(video, time) {
  return new Promise((resolve) => {
    const done = () => { video.removeEventListener("seeked", done); resolve(); };
    video.addEventListener("seeked", done);
    video.currentTime = Math.min(time, Math.max(0, (video.duration || time) - 0.001));
  });
}

async function loadVideo() {
  const video = $("player");
  if (video.src) URL.revokeObjectURL(video.src);
  video.src = URL.createObjectURL(chosen);
  await new Promise((resolve) => {
    video.onloadeddata = resolve;
    video.onerror = resolve;  // frames stay blank; the regions still show
  });
  return video;
}

function drawOverlay(canvas, grid, highlight) {
  // Paint one pixel per patch, then scale up without smoothing: crisp cells, no seams.
  const rows = grid.length, cols = grid[0].length;
  const cells = document.createElement("canvas");
  cells.width = cols;
  cells.height = rows;
  const small = cells.getContext("2d");
  const pixels = small.createImageData(cols, rows);
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const e = grid[y][x];
      // Nothing hovered: the frame stays clear; hovered: only that entity's patches.
      if (e < 0 || highlight === null || e !== highlight) continue;
      const hex = PALETTE[e % PALETTE.length];
      const i = 4 * (y * cols + x);
      pixels.data[i] = parseInt(hex.slice(1, 3), 16);
      pixels.data[i + 1] = parseInt(hex.slice(3, 5), 16);
      pixels.data[i + 2] = parseInt(hex.slice(5, 7), 16);
      pixels.data[i + 3] = 170;
    }
  }
  small.putImageData(pixels, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(cells, 0, 0, canvas.width, canvas.height);
}

function highlight(index) {
  document.querySelectorAll(".frame canvas.overlay").forEach((c) => drawOverlay(c, JSON.parse(c.dataset.grid), index));
  document.querySelectorAll(".chip").forEach((c) => c.classList.toggle("dim", index !== null && Number(c.dataset.index) !== index));
}

async function render(data) {
  const actions = $("actions");
  actions.innerHTML = "";
  for (const a of data.actions) {
    const li = document.createElement("li");
    li.innerHTML = `<span class="label"></span> <small>${(a.score * 100).toFixed(1)}% · cosine ${a.similarity.toFixed(3)}</small><div class="bar"></div>`;
    li.querySelector(".label").textContent = a.label;
    li.querySelector(".bar").style.width = `${Math.max(2, a.score * 100)}%`;
    actions.appendChild(li);
  }
  const entities = $("entities");
  entities.innerHTML = "";
  (data.entities || []).forEach((e, i) => {
    if (e.score < 0.005) return;  // under half a percent of the clip: not worth a chip
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.dataset.index = i;
    chip.style.background = PALETTE[i % PALETTE.length];
    chip.style.color = textColor(PALETTE[i % PALETTE.length]);
    chip.textContent = `${e.name} ${(e.score * 100).toFixed(0)}%`;
    chip.onmouseenter = () => highlight(i);
    chip.onmouseleave = () => highlight(null);
    entities.appendChild(chip);
  });
  const frames = $("frames");
  frames.innerHTML = "";
  const video = await loadVideo();
  const crop = data.video.crop;
  for (const region of data.regions || []) {
    const box = document.createElement("div");
    box.className = "frame";
    const image = document.createElement("canvas");
    const overlay = document.createElement("canvas");
    image.width = image.height = overlay.width = overlay.height = 180;
    overlay.className = "overlay";
    overlay.dataset.grid = JSON.stringify(region.grid);
    box.append(image, overlay);
    const label = document.createElement("span");
    label.textContent = `frame ${region.frame + 1} · ${region.time_s.toFixed(2)} s`;
    box.appendChild(label);
    frames.appendChild(box);
    if (video.videoWidth) {
      await seek(video, region.time_s);
      image.getContext("2d").drawImage(video, crop.x, crop.y, crop.width, crop.height, 0, 0, 180, 180);
    }
    drawOverlay(overlay, region.grid, null);
  }
  const v = data.video, t = data.timings;
  const warned = (data.warnings || []).length ? ` · ${data.warnings.join("; ")}` : "";
  $("facts").textContent = `${v.width}×${v.height}, ${v.duration_s} s at ${v.fps} fps${warned} · ` +
    `decode ${t.decode_ms} ms, queue ${t.queue_ms} ms, inference ${t.inference_ms} ms, total ${t.total_ms} ms · ` +
    `${data.model.name} (${data.model.backend})`;
  $("result").hidden = false;
}

async function failure(resp) {
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401) $("key-box").open = true;
  return new Error(data.detail || `${resp.status} ${resp.statusText}`);
}

function showProgress(status) {
  const p = status.progress;
  const eta = p.eta_s != null ? ` · about ${Math.ceil(p.eta_s)} s left` : "";
  $("job-text").textContent = status.state === "queued" ? "Queued…" :
    `Windows ${p.windows_done} of ${p.windows_total || "?"}${eta}`;
  $("job-bar").style.width = `${(p.fraction * 100).toFixed(1)}%`;
}

function follow(url) {
  // Server-sent events where the browser may send them (no API key); polling otherwise.
  return new Promise((resolve, reject) => {
    if (!$("key").value && window.EventSource) {
      const events = new EventSource(url + "/events");
      const on = (e) => {
        const status = JSON.parse(e.data);
        showProgress(status);
        if (["succeeded", "failed", "cancelled"].includes(status.state)) { events.close(); resolve(); }
      };
      for (const kind of ["queued", "progress", "succeeded", "failed", "cancelled"]) events.addEventListener(kind, on);
      events.onerror = () => { events.close(); poll(url).then(resolve, reject); };
    } else {
      poll(url).then(resolve, reject);
    }
  });
}

async function poll(url) {
  for (;;) {
    const resp = await fetch(url, { headers: authHeaders() });
    if (!resp.ok) throw await failure(resp);
    const status = await resp.json();
    showProgress(status);
    if (["succeeded", "failed", "cancelled"].includes(status.state)) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function runJob() {
  showError("");
  $("result").hidden = true;
  $("go").disabled = true;
  $("job").hidden = false;
  showProgress({ state: "queued", progress: { fraction: 0 } });
  const params = new URLSearchParams({ top_k: "5" });
  const labels = $("labels").value.trim() || $("label-set").value;
  if (labels) params.set("labels", labels);
  const body = new FormData();
  body.append("video", chosen, chosen.name || "video.mp4");
  try {
    const resp = await fetch("/jobs?" + params, { method: "POST", body, headers: authHeaders() });
    if (!resp.ok) throw await failure(resp);
    const url = resp.headers.get("Location");
    await follow(url);
    const done = await fetch(url, { headers: authHeaders() });
    if (!done.ok) throw await failure(done);
    const status = await done.json();
    if (status.state !== "succeeded") throw new Error(status.error ? status.error.detail : `the job was ${status.state}`);
    last = status.result;
    renderTimeline(status.result);
  } catch (err) {
    showError(err.message.startsWith("Failed to fetch") ? "The server could not be reached." : err.message);
  } finally {
    $("job").hidden = true;
    $("go").disabled = false;
  }
}

function describe(segment) {
  const what = segment.label === null ? "none of the labels" : segment.label;
  const seen = segment.entities.map((e) =>
    `${e.name} ${(e.score * 100).toFixed(0)}% (at ${e.times_s.slice(0, 4).map((t) => t.toFixed(1)).join(", ")} s)`);
  return `${what}: ${segment.start_s.toFixed(1)}–${segment.end_s.toFixed(1)} s, ` +
    `${(segment.score * 100).toFixed(0)}%. Aligned: ${seen.join(" · ") || "nothing"}.`;
}

function renderTimeline(data, source) {
  // `source`: where the video plays from (a stored video's file); else the chosen file.
  const actions = $("actions");
  actions.innerHTML = "";
  const viewer = $("viewer");
  if (!source || viewer.dataset.source !== source) {
    if (viewer.src.startsWith("blob:")) URL.revokeObjectURL(viewer.src);
    viewer.src = source || URL.createObjectURL(chosen);
    viewer.dataset.source = source || "";
  }
  $("relabel").hidden = !source;
  const total = data.video.duration_s || 1;
  const lanes = $("lanes");
  lanes.innerHTML = "";
  const names = data.summary.map((s) => s.label);
  if (data.timeline.some((s) => s.label === null)) names.push(null);
  const heads = [];
  names.forEach((name, i) => {
    const lane = document.createElement("div");
    lane.className = "lane";
    const title = document.createElement("div");
    title.className = "lane-name";
    const time = data.summary.find((s) => s.label === name);
    title.textContent = name === null ? "none of these" : `${name} (${time.seconds.toFixed(0)} s)`;
    const track = document.createElement("div");
    track.className = "track";
    const color = name === null ? "#9aa5b1" : PALETTE[i % PALETTE.length];
    for (const segment of data.timeline.filter((s) => s.label === name)) {
      const bar = document.createElement("div");
      bar.className = "segment";
      bar.style.left = `${(segment.start_s / total) * 100}%`;
      bar.style.width = `${((segment.end_s - segment.start_s) / total) * 100}%`;
      bar.style.background = color;
      bar.dataset.start = segment.start_s;
      bar.title = `${segment.start_s.toFixed(1)}–${segment.end_s.toFixed(1)} s`;
      bar.onmouseenter = () => { $("segment-info").textContent = describe(segment); };
      bar.onclick = () => {
        document.querySelectorAll(".segment.on").forEach((b) => b.classList.remove("on"));
        bar.classList.add("on");
        $("segment-info").textContent = describe(segment);
        viewer.currentTime = segment.start_s;
        viewer.play().catch(() => {});
      };
      track.appendChild(bar);
    }
    const head = document.createElement("div");
    head.className = "playhead";
    track.appendChild(head);
    heads.push(head);
    lane.append(title, track);
    lanes.appendChild(lane);
  });
  viewer.ontimeupdate = () => {
    for (const head of heads) head.style.left = `${(viewer.currentTime / total) * 100}%`;
  };
  $("timeline-card").hidden = false;
}

async function loadSamples() {
  const list = $("sample-list");
  try {
    const resp = await fetch("/samples");
    const names = (await resp.json()).samples || [];
    list.innerHTML = names.length ? "" : "none shipped with this model";
    for (const name of names) {
      const button = document.createElement("button");
      button.className = "sample";
      button.textContent = name.replace(/\.mp4$/, "").replaceAll("_", " ");
      button.onclick = async () => {
        const blob = await (await fetch(`/samples/${encodeURIComponent(name)}`)).blob();
        choose(new File([blob], name, { type: "video/mp4" }), name);
      };
      const link = document.createElement("a");
      link.href = `/samples/${encodeURIComponent(name)}`;
      link.download = name;
      link.textContent = "⤓";
      link.title = "download";
      list.append(button, link);
    }
  } catch (err) {
    list.textContent = "unavailable";
  }
}

$("file").addEventListener("change", (e) => e.target.files[0] && choose(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) choose(e.dataTransfer.files[0]);
});
$("go").addEventListener("click", recognize);
$("labels").addEventListener("keydown", (e) => { if (e.key === "Enter") recognize(); });
async function loadModel() {
  try {
    const info = await (await fetch("/model")).json();
    $("domain").textContent = `Model ${info.name} knows: ${info.domain}.`;
    $("domain").hidden = false;
  } catch (err) { /* the note stays hidden */ }
  try {
    const resp = await fetch("/label-sets", { headers: authHeaders() });
    if (!resp.ok) return;
    for (const set of (await resp.json()).label_sets) {
      const option = document.createElement("option");
      option.value = `@${set.name}`;
      option.textContent = `${set.title} (${set.labels} labels)`;
      $("label-set").appendChild(option);
    }
    $("label-set").hidden = false;
  } catch (err) { /* no picker */ }
}

loadSamples();
loadModel();
