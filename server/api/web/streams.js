// Live streams on the page: watch a source for the labels above, list the streams, and for
// the one opened draw its timeline as it grows and list its events. Uses app.js's helpers
// ($, authHeaders, showError, failure, PALETTE).
"use strict";
let following = null;  // { id, abort } of the stream whose events are drawn

async function loadStreams() {
  const list = $("streams");
  const resp = await fetch("/streams", { headers: authHeaders() });
  if (!resp.ok) {
    list.textContent = `Streams are unavailable: ${(await resp.json()).detail}`;
    return;
  }
  list.innerHTML = "";
  for (const stream of (await resp.json()).streams) {
    const item = document.createElement("li");
    const open = document.createElement("button");
    open.className = "sample";
    open.textContent = stream.url;
    open.onclick = () => followStream(stream.id);
    const stop = document.createElement("button");
    stop.className = "sample";
    stop.textContent = "×";
    stop.title = "stop watching";
    stop.onclick = async () => {
      await fetch(`/streams/${stream.id}`, { method: "DELETE", headers: authHeaders() });
      loadStreams();
    };
    item.append(open, ` ${stream.state} `, stop);
    list.appendChild(item);
  }
}

async function watchUrl() {
  showError("");
  const labels = $("labels").value.trim() || $("label-set").value;
  const body = { url: $("stream-url").value.trim() };
  if (labels) body.labels = labels;
  const resp = await fetch("/streams", {
    method: "POST", body: JSON.stringify(body),
    headers: { "content-type": "application/json", ...authHeaders() },
  });
  if (!resp.ok) {
    showError((await failure(resp)).message);
    return;
  }
  const stream = await resp.json();
  await loadStreams();
  followStream(stream.id);
}

function drawLive(segments, now) {
  // One lane per label seen; the track spans the stream's time so far.
  const total = Math.max(now, 1);
  const lanes = $("stream-lanes");
  lanes.innerHTML = "";
  const names = [...new Set(segments.map((s) => s.label))];
  names.forEach((name, i) => {
    const lane = document.createElement("div");
    lane.className = "lane";
    const title = document.createElement("div");
    title.className = "lane-name";
    title.textContent = name;
    const track = document.createElement("div");
    track.className = "track";
    for (const s of segments.filter((x) => x.label === name)) {
      const bar = document.createElement("div");
      bar.className = "segment";
      const end = s.end_s === null ? now : s.end_s;
      bar.style.left = `${(s.start_s / total) * 100}%`;
      bar.style.width = `${((end - s.start_s) / total) * 100}%`;
      bar.style.background = PALETTE[i % PALETTE.length];
      bar.title = `${s.start_s.toFixed(1)}–${s.end_s === null ? "now" : end.toFixed(1) + " s"}`;
      bar.onmouseenter = () => {
        const seen = s.entities.map((e) => `${e.name} ${(e.score * 100).toFixed(0)}%`);
        $("stream-info").textContent = `${s.label}: ${bar.title}, ${(s.score * 100).toFixed(0)}%. ` +
          `Aligned: ${seen.join(" · ") || "nothing"}.`;
      };
      track.appendChild(bar);
    }
    lane.append(title, track);
    lanes.appendChild(lane);
  });
}

async function followStream(id) {
  if (following) following.abort.abort();
  const abort = new AbortController();
  following = { id, abort };
  $("stream-card").hidden = false;
  $("stream-events").innerHTML = "";
  const segments = [];
  let now = 0;
  const log = (text) => {
    const item = document.createElement("li");
    item.textContent = text;
    $("stream-events").prepend(item);
  };
  try {
    const resp = await fetch(`/streams/${id}/events`, { headers: authHeaders(), signal: abort.signal });
    if (!resp.ok) throw await failure(resp);
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = (block.match(/^event: (.*)$/m) || [])[1];
        const data = JSON.parse((block.match(/^data: (.*)$/m) || [, "{}"])[1]);
        if (event === "segment") {
          const open = segments.findIndex((s) => s.end_s === null && s.start_s === data.start_s && s.label === data.label);
          if (open >= 0) segments[open] = data; else segments.push(data);
          now = Math.max(now, data.end_s ?? data.start_s + 4);
          log(`${data.label} ${data.end_s === null ? "began" : "ended"} at ${(data.end_s ?? data.start_s).toFixed(1)} s`);
          drawLive(segments, now);
        } else if (event === "alert") {
          log(`ALERT ${data.label} (${(data.segment.score * 100).toFixed(0)}%) since ${data.segment.start_s.toFixed(1)} s`);
        } else if (event === "status") {
          $("stream-state").textContent = data.state + (data.error ? ` — ${data.error}` : "");
        } else if (event === "deleted") {
          $("stream-state").textContent = "deleted";
          return;
        }
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") showError(err.message);
  }
}

$("watch").onclick = watchUrl;
loadStreams();
