// The studio page: builds a job from the form, follows its events, shows the picture as it forms.
// Every setting's control is made from the settings' declarations (GET /api/settings), and so are the
// pictures a job takes besides the photograph and the paintings: a mask for each painting and the
// photograph's own, each a file or a rectangle drawn on the photograph, and a starting picture.
// Plain DOM, no framework; everything comes from this server.
"use strict";

const $ = (id) => document.getElementById(id);
const GROUPS = {picture: "Picture", colour: "Colour", schedule: "Schedule", style: "Style", memory: "Memory",
                engine: "Engine"};
const COLOURS = ["#e4572e", "#3a86ff", "#f3a712", "#8ac926", "#9b5de5", "#00bbf9", "#ff006e", "#6a4c93"];
const MASK_SIDE = 512;   // px, the longest side of a drawn mask (the engine resizes it to each scale)
let current = null;      // the job followed: {id, source: EventSource}
let uploads = [];        // uploaded paintings: {file, box, weight, where}
let described = null;    // the settings' and pictures' declarations
let choices = [];        // every picture choice on the page (PictureChoice)
let drawing = null;      // the choice whose region the next drag on the photograph draws

function message(text, error = false) {
  const box = $("message");   // not window.status: getElementById on purpose
  box.textContent = text;
  box.className = error ? "error" : "";
}

function seconds(s) {
  if (s == null || !isFinite(s)) return "";
  return s >= 90 ? `${Math.round(s / 60)} min` : `${Math.max(0, Math.round(s))} s`;
}

const idOf = (name) => name.replaceAll("_", "-");

// -- the settings' controls ----------------------------------------------------------------------

function settingControl(c) {
  const label = document.createElement("label");
  label.className = "setting";
  label.title = c.help + (c.off !== null ? ` (${c.off}: ${c.off_means})` : "");
  let input;
  if (c.kind === "choice") {
    input = document.createElement("select");
    c.choices.forEach((value, i) => {
      const option = new Option(c.choice_help[i] ? `${value}: ${c.choice_help[i]}` : value, value);
      option.selected = value === c.default;
      input.append(option);
    });
  } else {
    input = document.createElement("input");
    if (c.kind === "bool") {
      input.type = "checkbox";
      input.checked = c.default;
    } else if (c.kind === "int" || c.kind === "float") {
      input.type = "number";
      input.value = String(c.default);
      if (c.low !== null) input.min = String(c.off !== null ? Math.min(c.off, c.low) : c.low);
      if (c.high !== null) input.max = String(c.high);
      input.step = c.kind === "int" ? String(c.multiple) : "any";
    } else {
      input.type = "text";
      input.value = c.default;
      input.placeholder = c.kind === "layers" ? "layer:weight,…" : "n1,n2,…";
    }
  }
  input.id = idOf(c.name);
  input.name = c.name;
  input.dataset.kind = c.kind;
  const text = c.label + (c.unit ? `, ${c.unit}` : "") + (c.off !== null ? ` (${c.off}: ${c.off_means})` : "");
  if (c.kind === "bool") label.append(input, ` ${text}`);
  else label.append(`${text} `, input);
  return label;
}

function buildSettings() {
  const groups = {};
  for (const c of described.settings.filter((c) => c.page)) {
    if (!groups[c.group]) {
      const fieldset = document.createElement("fieldset");
      const legend = document.createElement("legend");
      legend.textContent = GROUPS[c.group] || c.group;
      const more = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = "more";
      more.append(summary);
      fieldset.append(legend, more);
      $("settings").append(fieldset);
      groups[c.group] = {fieldset, more, count: 0};
    }
    const group = groups[c.group];
    if (c.advanced) group.more.append(settingControl(c));
    else group.fieldset.insertBefore(settingControl(c), group.more);
  }
  for (const group of Object.values(groups)) {
    if (group.more.children.length === 1) group.more.remove();   // the summary alone
    else if (group.fieldset.children.length === 2) group.more.open = true;   // nothing outside it
  }
}

function settingsInto(form) {
  for (const c of described.settings.filter((c) => c.page)) {
    const input = $(idOf(c.name));
    const value = c.kind === "bool" ? String(input.checked) : input.value.trim();
    // an empty number box: the setting's default; an empty list is a value (no layers, no counts)
    if (value !== "" || ["ints", "floats", "layers"].includes(c.kind)) form.append(c.name, value);
  }
}

// -- pictures besides the photograph and the paintings --------------------------------------------

class PictureChoice {
  // one picture input (``engine.settings.IMAGE_INPUTS``): none, a file, or (``region``) a rectangle
  // drawn on the photograph, in [0, 1] of its width and height
  constructor(input, owner) {
    this.input = input;
    this.owner = owner;
    this.colour = COLOURS[choices.length % COLOURS.length];
    this.rect = null;
    this.element = document.createElement("div");
    this.element.className = "picture-choice";
    this.element.dataset.image = input.name;
    this.element.title = input.help;
    this.file = document.createElement("input");
    this.file.type = "file";
    this.file.accept = "image/*";
    this.file.name = input.form;
    const label = document.createElement("label");
    label.append(`${input.label} `);
    if (input.region) {
      this.mode = document.createElement("select");
      this.mode.append(new Option(input.per_style ? "everywhere (else)" : "everywhere", "none"),
                       new Option("a region I draw", "region"), new Option("a mask file", "file"));
      this.mode.addEventListener("change", () => this.changed());
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = this.colour;
      this.draw = document.createElement("button");
      this.draw.type = "button";
      this.draw.textContent = "redraw";
      this.draw.addEventListener("click", () => this.startDrawing());
      label.append(swatch, this.mode);
      this.element.append(label, this.draw, this.file);
    } else {
      label.append(this.file);
      this.element.append(label);
    }
    this.file.addEventListener("change", () => this.changed());
    choices.push(this);
    this.changed();
  }

  kind() {
    if (!this.mode) return this.file.files[0] ? "file" : "none";
    return this.mode.value;
  }

  given() {
    const kind = this.kind();
    return (kind === "region" && this.rect !== null) || (kind === "file" && this.file.files[0] !== undefined);
  }

  changed() {
    const kind = this.kind();
    if (this.mode) {
      this.file.classList.toggle("hidden", kind !== "file");
      this.draw.classList.toggle("hidden", kind !== "region");
      if (kind === "region" && this.rect === null) this.startDrawing();
      else if (kind !== "region" && drawing === this) stopDrawing();
    } else if (this.input.sets.length && this.file.files[0] && $(idOf(this.input.sets[0]))) {
      $(idOf(this.input.sets[0])).value = this.input.sets[1];   // a starting picture given: start from it
    }
    redraw();
  }

  startDrawing() {
    drawing = this;
    $("draw-hint").textContent = `drag on the photograph: ${this.input.label.toLowerCase()}` +
      (this.owner ? ` ${this.owner}` : "");
    $("draw-hint").classList.remove("hidden");
  }

  remove() {
    choices = choices.filter((c) => c !== this);
    if (drawing === this) stopDrawing();
    redraw();
  }

  async blob(size, others) {
    // this choice's mask as a file to send; with nothing given, where none of ``others`` applies
    if (this.kind() === "file" && this.file.files[0]) return [this.file.files[0], this.file.files[0].name];
    if (this.kind() === "region" && this.rect) {
      const r = this.rect.map((v) => Math.round(v * 100));
      return [await maskPicture(size, [this]), `region-${r.join("-")}.png`];
    }
    return [await maskPicture(size, others, true), "rest-of-picture.png"];
  }
}

function stopDrawing() {
  drawing = null;
  $("draw-hint").classList.add("hidden");
}

async function maskPicture(size, sources, invert = false) {
  // white where any of ``sources`` applies (drawn rectangles, mask files: the lightest wins), else
  // black; ``invert``: the other way round
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = size;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "black";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.globalCompositeOperation = "lighten";
  ctx.fillStyle = "white";
  for (const source of sources) {
    if (source.kind() === "region" && source.rect) {
      const [x0, y0, x1, y1] = source.rect;
      ctx.fillRect(x0 * canvas.width, y0 * canvas.height, (x1 - x0) * canvas.width, (y1 - y0) * canvas.height);
    } else if (source.kind() === "file" && source.file.files[0]) {
      ctx.drawImage(await createImageBitmap(source.file.files[0]), 0, 0, canvas.width, canvas.height);
    }
  }
  if (invert) {
    ctx.globalCompositeOperation = "difference";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }
  return new Promise((done) => canvas.toBlob(done, "image/png"));
}

function maskSize() {
  const img = $("content-thumb");
  const w = img.naturalWidth || 4, h = img.naturalHeight || 3;
  const scale = MASK_SIDE / Math.max(w, h);
  return [Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(h * scale))];
}

function redraw() {
  const canvas = $("regions"), img = $("content-thumb");
  canvas.width = img.clientWidth;
  canvas.height = img.clientHeight;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "12px system-ui, sans-serif";
  for (const choice of choices) {
    if (choice.kind() !== "region" || !choice.rect) continue;
    const [x0, y0, x1, y1] = choice.rect;
    const x = x0 * canvas.width, y = y0 * canvas.height, w = (x1 - x0) * canvas.width, h = (y1 - y0) * canvas.height;
    ctx.fillStyle = choice.colour + "33";
    ctx.fillRect(x, y, w, h);
    ctx.strokeStyle = choice.colour;
    ctx.lineWidth = 2;
    ctx.strokeRect(x, y, w, h);
    ctx.fillStyle = choice.colour;
    ctx.fillText(choice.owner || choice.input.label, x + 3, y + 13);
  }
}

function dragToDraw() {
  const canvas = $("regions");
  let start = null;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)),
            Math.min(1, Math.max(0, (event.clientY - box.top) / box.height))];
  };
  const rect = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  canvas.addEventListener("mousedown", (e) => { if (drawing) { start = at(e); e.preventDefault(); } });
  canvas.addEventListener("mousemove", (e) => {
    if (!start || !drawing) return;
    drawing.rect = rect(start, at(e));
    redraw();
  });
  window.addEventListener("mouseup", (e) => {
    if (!start || !drawing) return;
    const r = rect(start, at(e));
    start = null;
    if (r[2] - r[0] < 0.01 || r[3] - r[1] < 0.01) return;   // a click, not a rectangle
    drawing.rect = r;
    stopDrawing();
    redraw();
  });
}

// -- photograph and paintings ---------------------------------------------------------------------

function paintingRow(label, thumbSrc, checked) {
  const row = document.createElement("div");
  row.className = "painting";
  const line = document.createElement("div");
  line.className = "line";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = checked;
  const weight = document.createElement("input");
  weight.type = "number"; weight.min = "0"; weight.step = "any"; weight.value = "1";
  weight.title = "blend weight";
  line.append(box);
  if (thumbSrc) {
    const img = document.createElement("img");
    img.src = thumbSrc; img.alt = label;
    line.append(img);
  }
  line.append(document.createTextNode(label), weight);
  row.append(line);
  let where = null;
  for (const input of described.images.filter((i) => i.per_style)) {
    where = new PictureChoice(input, label);
    row.append(where.element);
  }
  return {row, box, weight, where};
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
    p.row.where = p.where;
    $("paintings").append(p.row);
  }
}

function showContentThumb() {
  const file = $("content-file").files[0];
  $("content-thumb").src = file ? URL.createObjectURL(file) : `/api/bundled/content/${$("content-name").value}`;
}

function chosenPaintings() {
  // bundled ones first, then uploads: the order the server blends and places them in
  const bundled = [...document.querySelectorAll("#paintings .painting")].filter((r) => r.querySelector("input").checked)
    .map((r) => ({name: r.dataset.name, weight: r.querySelector("input[type=number]").value, where: r.where}));
  const own = uploads.filter((u) => u.box.checked).map((u) => ({file: u.file, weight: u.weight.value, where: u.where}));
  return {bundled, own};
}

async function jobForm() {
  const form = new FormData();
  const file = $("content-file").files[0];
  if (file) form.append("content", file, file.name);
  else form.append("content_name", $("content-name").value);
  const {bundled, own} = chosenPaintings();
  for (const p of bundled) form.append("style_name", p.name);
  for (const p of own) form.append("style", p.file, p.file.name);
  const paintings = [...bundled, ...own];
  const weights = paintings.map((p) => p.weight || "1");
  if (weights.length > 1) form.append("style_blend", weights.join(","));
  settingsInto(form);
  const size = maskSize();
  for (const input of described.images) {
    if (input.per_style) {   // one for each painting once any has one; the others take the rest
      const wheres = paintings.map((p) => p.where);
      if (!wheres.some((w) => w && w.given())) continue;
      for (const where of wheres) {
        const [blob, name] = await where.blob(size, wheres.filter((w) => w !== where));
        form.append(input.form, blob, name);
      }
    } else {
      const choice = choices.find((c) => c.input.name === input.name);
      if (!choice || !choice.given()) continue;
      const [blob, name] = input.region ? await choice.blob(size, []) : [choice.file.files[0], choice.file.files[0].name];
      form.append(input.form, blob, name);
    }
  }
  return form;
}

// -- a job ----------------------------------------------------------------------------------------

async function go(event) {
  event.preventDefault();
  if (current) return;
  $("go").disabled = true;
  $("download").classList.add("hidden");
  message("sending…");
  let answer, body;
  try {
    answer = await fetch("/api/jobs", {method: "POST", body: await jobForm()});
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
  for (const end of ["done", "cancelled", "failed", "interrupted"]) {
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
            p.phase === "waiting for memory" ? `waiting for ${p.memory_mb} MB of memory: other pictures are using it` :
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
  if (job.state === "failed" || job.state === "interrupted") message(`${job.state}: ${job.error}`, true);
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
    if (job.state === "interrupted") {   // its pictures and settings were kept: one click runs it again
      const again = document.createElement("button");
      again.type = "button";
      again.textContent = "Run again";
      again.addEventListener("click", () => rerun(job.id));
      item.append(" ", again);
    }
    list.append(item);
  }
}

async function rerun(id) {
  if (current) return;
  const answer = await fetch(`/api/jobs/${id}/rerun`, {method: "POST"});
  const body = await answer.json();
  if (!answer.ok) {
    message(body.detail, true);
    return;
  }
  $("go").disabled = true;
  $("download").classList.add("hidden");
  follow(body);
}

async function start() {
  described = await fetch("/api/settings").then((r) => r.json());
  buildSettings();
  for (const input of described.images.filter((i) => !i.per_style)) {
    $("photo-pictures").append(new PictureChoice(input, "").element);
  }
  dragToDraw();
  await loadBundled();
  await loadHistory();
}

$("content-file").addEventListener("change", showContentThumb);
$("content-name").addEventListener("change", () => { $("content-file").value = ""; showContentThumb(); });
$("content-thumb").addEventListener("load", redraw);
$("style-files").addEventListener("change", () => {
  for (const file of $("style-files").files) {
    const p = paintingRow(file.name, URL.createObjectURL(file), true);
    uploads.push({file, box: p.box, weight: p.weight, where: p.where});
    $("uploaded-paintings").append(p.row);
  }
  $("style-files").value = "";
});
$("job-form").addEventListener("submit", go);
$("stop").addEventListener("click", stop);
start();
