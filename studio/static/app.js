// The studio page: builds a job from the form, follows its events, shows the picture as it forms.
// Plain DOM, no framework; everything comes from this server.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null;      // the job followed: {id, source: EventSource}
let uploads = [];        // uploaded paintings: {file, weight input}

function message(text, error = false) {
  const box = $("message");   // not window.status: getElementById on purpose
  box.textContent = text;
  box.className = error ? "error" : "";
}

function seconds(s) {
  if (s == null || !isFinite(s)) return "";
  return s >= 90 ? `${Math.round(s / 60)} min` : `${Math.max(0, Math.round(s))} s`;
}

function paintingRow(label, thumbSrc, checked) {
  const row = document.createElement("div");
  row.className = "painting";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = checked;
  const weight = document.createElement("input");
  weight.type = "number"; weight.min = "0"; weight.step = "any"; weight.value = "1";
  weight.title = "blend weight";
  row.append(box);
  if (thumbSrc) {
    const img = document.createElement("img");
    img.src = thumbSrc; img.alt = label;
    row.append(img);
  }
  row.append(document.createTextNode(label), weight);
  return {row, box, weight};
}

async function loadBundled() {
  const answer = await fetch("/api/bundled").then((r) => r.json());
  for (const name of answer.content) {
    const option = new Option(name.replace(/\.jpg$/, ""), name);
    option.selected = name === "chelsea.jpg";
    $("content-name").append(option);
  }
  showContentThumb();
  for (const name of answer.style) {
    const p = paintingRow(name.replace(/\.jpg$/, "").replace(/_/g, " "), `/api/bundled/style/${name}`,
                          name === "starry_night.jpg");
    p.row.dataset.name = name;
    p.row.classList.add("bundled");
    $("paintings").append(p.row);
  }
}

function showContentThumb() {
  const file = $("content-file").files[0];
  $("content-thumb").src = file ? URL.createObjectURL(file) : `/api/bundled/content/${$("content-name").value}`;
}

function chosenPaintings() {
  // bundled ones first, then uploads: the order the server blends them in
  const bundled = [...document.querySelectorAll("#paintings .painting")].filter((r) => r.querySelector("input").checked)
    .map((r) => ({name: r.dataset.name, weight: r.querySelector("input[type=number]").value}));
  const own = uploads.filter((u) => u.box.checked).map((u) => ({file: u.file, weight: u.weight.value}));
  return {bundled, own};
}

function jobForm() {
  const form = new FormData();
  const file = $("content-file").files[0];
  if (file) form.append("content", file, file.name);
  else form.append("content_name", $("content-name").value);
  const {bundled, own} = chosenPaintings();
  for (const p of bundled) form.append("style_name", p.name);
  for (const p of own) form.append("style", p.file, p.file.name);
  const weights = [...bundled, ...own].map((p) => p.weight || "1");
  if (weights.length > 1) form.append("style_blend", weights.join(","));
  form.append("size", $("size").value);
  form.append("iterations", $("iterations").value);
  form.append("scales", $("scales").value);
  form.append("content_weight", $("content-weight").value);
  form.append("style_weight", $("style-weight").value);
  form.append("preserve_colors", $("preserve-colors").value);
  form.append("step_engine", $("step-engine").value);
  return form;
}

async function go(event) {
  event.preventDefault();
  if (current) return;
  $("go").disabled = true;
  $("download").classList.add("hidden");
  message("sending…");
  let answer, body;
  try {
    answer = await fetch("/api/jobs", {method: "POST", body: jobForm()});
    body = await answer.json();
  } catch (err) {
    message(`the server did not answer (${err})`, true);
    $("go").disabled = false;
    return;
  }
  if (!answer.ok) {
    const wait = answer.headers.get("Retry-After");
    message(body.detail + (wait ? ` (retry in ${wait} s)` : ""), true);
    $("go").disabled = false;
    return;
  }
  follow(body);
}

function follow(job) {
  const source = new EventSource(`/api/jobs/${job.id}/events`);
  current = {id: job.id, source, preview: 0};
  $("stop").disabled = false;
  $("preview").dataset.preview = "0";
  show(job);
  source.addEventListener("progress", (e) => show(JSON.parse(e.data)));
  for (const end of ["done", "cancelled", "failed"]) {
    source.addEventListener(end, (e) => finish(JSON.parse(e.data)));
  }
  source.onerror = () => {
    // the stream closes after the last event; anything else is the server going away
    if (current && current.source === source && source.readyState === EventSource.CLOSED) {
      message("lost the server", true);
      reset();
    }
  };
}

function show(job) {
  const p = job.progress || {};
  if (job.state === "queued") {
    message(`waiting: number ${job.position} in line`);
  } else if (job.state === "running") {
    message(job.stopping ? "stopping after this evaluation…" :
            p.phase === "preparing" ? "preparing the models…" :
            `scale ${p.scale} of ${p.scales}, ${p.width}x${p.height} px, loss ${p.loss ? p.loss.toPrecision(4) : ""}`);
  }
  if (p.total) {
    $("bar").max = p.total;
    $("bar").value = p.evaluations || 0;
    $("stats").textContent = `${p.evaluations || 0} / ${p.total} evaluations · ` +
      `${(p.rate || 0).toFixed(1)} evaluations/s · ${seconds(p.left)} left`;
  }
  if (job.preview > current.preview || (job.result && job.state !== "running")) {
    current.preview = job.preview;
    const version = job.result ? `result-${job.state}` : job.preview;
    const next = new Image();
    next.onload = () => {
      $("preview").src = next.src;
      $("preview").dataset.preview = String(version);
    };
    next.src = `/api/jobs/${job.id}/image?v=${version}`;
  }
}

function finish(job) {
  current.source.close();
  show(job);
  if (job.state === "failed") message(`failed: ${job.error}`, true);
  else if (job.state === "cancelled") {
    message(job.result ? "stopped: the best picture so far" : "stopped before a picture");
  }
  else message(`done in ${seconds(job.progress.elapsed)}`);
  if (job.result) {
    $("download").href = `/api/jobs/${job.id}/image?download=true`;
    $("download").classList.remove("hidden");
  }
  reset();
  loadHistory();
}

function reset() {
  current = null;
  $("go").disabled = false;
  $("stop").disabled = true;
}

async function stop() {
  if (!current) return;
  $("stop").disabled = true;
  const answer = await fetch(`/api/jobs/${current.id}/cancel`, {method: "POST"});
  if (!answer.ok) message((await answer.json()).detail, true);
}

async function loadHistory() {
  const jobs = await fetch("/api/jobs?limit=12").then((r) => r.json());
  const list = $("history");
  list.replaceChildren();
  for (const job of jobs) {
    const item = document.createElement("li");
    const styles = (job.sources.style || []).map((s) => s.replace(/^style\//, "").replace(/\.jpg$/, ""));
    const what = `${job.sources.content.replace(/^content\//, "").replace(/\.jpg$/, "")} · ${styles.join(" + ")}`;
    if (job.result) {
      const link = document.createElement("a");
      link.href = `/api/jobs/${job.id}/image?download=true`;
      const img = document.createElement("img");
      img.src = `/api/jobs/${job.id}/image`;
      img.alt = what;
      img.loading = "lazy";
      link.append(img);
      item.append(link);
    }
    item.append(document.createTextNode(`${what} — ${job.state}${job.error ? ": " + job.error : ""}`));
    list.append(item);
  }
}

$("content-file").addEventListener("change", showContentThumb);
$("content-name").addEventListener("change", () => { $("content-file").value = ""; showContentThumb(); });
$("style-files").addEventListener("change", () => {
  for (const file of $("style-files").files) {
    const p = paintingRow(file.name, URL.createObjectURL(file), true);
    uploads.push({file, box: p.box, weight: p.weight});
    $("uploaded-paintings").append(p.row);
  }
  $("style-files").value = "";
});
$("job-form").addEventListener("submit", go);
$("stop").addEventListener("click", stop);
loadBundled().then(loadHistory);
