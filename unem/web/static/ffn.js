// FFN page: the four steps of flood-filling segmentation. Prepare (ffn-prep), train
// (ffn-train, with the run's curves live), segment (ffn-infer) — each form generated from
// its job kind's schema — then open the result in Dojo, export it or score it (evaluate).
import { io } from "/vendor/socket.io.esm.min.js";
import { EVENTS, NAMESPACES } from "/events.js";
import { api, element } from "/static/api.js";
import {
  connectJobs, FINISHED, formatDuration, formatMetrics, formatTime, percent, showProgress,
} from "/static/jobs_view.js";
import { optionsForm, readOptions, refreshChoices } from "/static/job_form.js";
import { LineChart } from "/static/trainer_chart.js";

const $ = (id) => document.getElementById(id);
const page = $("ffn-page");
const isAdmin = page.dataset.admin === "true";
const canExport = page.dataset.canExport === "true";
const PREP = "ffn-prep";
const TRAIN = "ffn-train";
const INFER = "ffn-infer";
const EVALUATE = "evaluate";
const CURVES = new Set(["loss", "eval/precision", "eval/recall", "eval/f1"]);
const GEOMETRY = ["preset", "fov", "deltas"]; // set from the chosen preparation
const HISTORY_TRIES = 4; // TensorBoard may not have read a new run yet: ask again, 2 s apart
const EXPORT_FORMATS = ["tiff-multipage", "tiff", "png", "hdf5", "npz", "npy", "zarr"];
const RESULTS_SHOWN = 10;
const chart = new LineChart($("loss-chart"), $("chart-legend"));
const kinds = {};
const runs = new Map(); // the ffn-train jobs, by id
const watched = new Map(); // id of a prep/infer/evaluate job submitted here → how to show it
const tasks = new Map(); // id of an export task → its status element
const taskNews = new Map(); // id of any task → its last event (one may beat the POST's answer)
let preparations = new Map();
let datasets = new Map();
let followed = null; // the id of the training run shown

function showError(id, message) {
  $(id).textContent = message;
  $(id).hidden = !message;
}

function readOnly(container) {
  if (isAdmin) return;
  for (const control of container.querySelectorAll("input, select, textarea")) control.disabled = true;
}

const triple = (values) => (values ? values.join(" × ") : "–");

// ---- forms ----

async function setUpForm(kindName, prefix, submitted) {
  const kind = kinds[kindName];
  if (!kind) {
    showError(`${prefix}-error`, `Not available: the ${kindName} job kind did not load.`);
    return;
  }
  $(`${prefix}-options`).replaceChildren(...await optionsForm(kind.schema, kind.fields));
  readOnly($(`${prefix}-options`));
  $(`${prefix}-form`).addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const options = readOptions($(`${prefix}-options`), kind.schema);
      const job = await api("POST", "/api/jobs", { kind: kindName, options });
      showError(`${prefix}-error`, "");
      submitted(job);
    } catch (failure) {
      showError(`${prefix}-error`, failure.message);
    }
  });
}

// A job submitted from a step, shown beside its button until the next one.
function watch(job, status, done) {
  watched.set(job.id, { status, done });
  showJob(job);
  api("GET", `/api/jobs/${job.id}`).then(showJob).catch(() => {}); // it may have ended already
}

function showJob(job) {
  const entry = watched.get(job.id);
  if (!entry) return;
  const running = job.state === "running" && job.total ? `${percent(job)} % · ${job.message || ""}` : job.state;
  entry.status.replaceChildren(element("a", { href: job.page_url }, `#${job.id}`), ` ${running}`,
    ...(job.error ? [` — ${job.error}`] : []));
  entry.status.dataset.state = job.state;
  if (FINISHED.has(job.state)) {
    watched.delete(job.id);
    if (job.state === "done") entry.done?.(job);
  }
}

// ---- 1. preparations ----

function preparationRow(preparation) {
  const remove = async () => {
    if (!window.confirm(`Delete the preparation ${preparation.name}?`)) return;
    try {
      await api("DELETE", `/api/ffn/preparations/${encodeURIComponent(preparation.name)}`);
      await refreshPreparations();
    } catch (failure) {
      window.alert(failure.message);
    }
  };
  const [[z0, z1], [y0, y1], [x0, x1]] = preparation.box;
  return element("tr", { dataset: { preparation: preparation.name } },
    element("td", {}, element("strong", {}, preparation.name)),
    element("td", {}, `${preparation.dataset} / ${preparation.image_layer} + ${preparation.label_layer}`,
      element("div", { class: "muted" }, `box ${z0}:${z1}, ${y0}:${y1}, ${x0}:${x1}`)),
    element("td", {}, `${preparation.preset}: FOV ${triple(preparation.fov)}`,
      element("div", { class: "muted" }, `deltas ${triple(preparation.deltas)}`)),
    element("td", {}, `${preparation.objects} · ${preparation.coordinates}`),
    element("td", {}, formatTime(preparation.created_at)),
    element("td", {}, isAdmin ? element("button", { class: "danger", onclick: remove }, "Delete") : null));
}

async function refreshPreparations(chosen) {
  const { preparations: list } = await api("GET", "/api/ffn/preparations");
  preparations = new Map(list.map((p) => [p.name, p]));
  document.querySelector("#preparations tbody").replaceChildren(...list.map(preparationRow));
  $("no-preparations").hidden = list.length > 0;
  $("preparations").hidden = list.length === 0;
  await refreshChoices($("train-options"), "ffn-preparation");
  const picker = $("train-options").querySelector("[name=preparation]");
  if (picker && chosen && preparations.has(chosen)) picker.value = chosen;
  applyGeometry();
}

// Train with the chosen preparation's own preset, FOV and deltas.
function applyGeometry() {
  const form = $("train-options");
  const chosen = preparations.get(form.querySelector("[name=preparation]")?.value);
  if (!chosen) return;
  for (const name of GEOMETRY) {
    const control = form.querySelector(`[name=${name}]`);
    const value = chosen.train_defaults[name];
    if (control) control.value = Array.isArray(value) ? value.join(", ") : value ?? "";
  }
}

// ---- 2. training: the run shown, with its curves ----

function listRuns() {
  const picker = $("run-picker");
  const newest = [...runs.values()].sort((a, b) => b.id - a.id);
  picker.replaceChildren(...newest.map((job) => element("option", { value: job.id }, `#${job.id} ${job.title} · ${job.state}`)));
  if (followed !== null) picker.value = followed;
  picker.disabled = newest.length === 0;
}

function renderRun() {
  const job = runs.get(followed);
  $("run-empty").hidden = Boolean(job);
  $("run-box").hidden = !job;
  if (!job) return;
  $("run-title").textContent = `#${job.id} ${job.title}`;
  $("run-title").href = job.page_url;
  showProgress($("run-bar"), job);
  $("run-state").textContent = job.state;
  $("run-state").className = `state ${job.state}`;
  $("run-step").textContent = `${percent(job)} %` + (job.total ? ` · step ${job.step} / ${job.total}` : "") +
    ` · ${formatMetrics(job.metrics)}`;
  $("run-eta").textContent = job.state === "running" ? `· ${formatDuration(job.eta_seconds)} left` : "";
  showError("run-error", job.error || "");
  $("run-page").href = job.page_url;
  $("run-tensorboard").href = job.tensorboard_url;
  $("run-log").href = job.log_url;
  listRuns();
}

function addPoints(step, metrics) {
  for (const [name, value] of Object.entries(metrics || {})) {
    const last = chart.last(name);
    if (CURVES.has(name) && !(last && last[0] === step)) chart.add(name, [[step, value]]);
  }
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// The whole curves so far, from the job's TensorBoard run (best effort).
async function loadHistory(jobId) {
  const run = `${jobId}/tensorboard`;
  for (let attempt = 0; attempt < HISTORY_TRIES && followed === jobId; attempt += 1) {
    try {
      const tags = Object.keys((await api("GET", "/tensorboard/data/plugin/scalars/tags"))[run] || {});
      for (const tag of tags.filter((t) => CURVES.has(t))) {
        const query = new URLSearchParams({ run, tag });
        const scalars = await api("GET", `/tensorboard/data/plugin/scalars/scalars?${query}`);
        if (followed === jobId) chart.add(tag, scalars.map(([, step, value]) => [step, value]));
      }
      if (tags.length) return;
    } catch {
      return;
    }
    await sleep(2000);
  }
}

function follow(jobId) {
  const job = runs.get(jobId);
  followed = jobId;
  chart.clear();
  renderRun();
  if (job && (job.step > 0 || FINISHED.has(job.state))) loadHistory(jobId);
}

function trainingUpdated(job) {
  const before = runs.get(job.id);
  runs.set(job.id, job);
  if (followed === null) follow(job.id);
  else if (job.id === followed) {
    renderRun();
    if (job.state === "done" && before?.state !== "done") loadHistory(job.id);
  } else listRuns();
  if (job.state === "done" && before?.state !== "done") refreshModels(job.result?.model);
}

function trainingProgress(progress) {
  const job = runs.get(progress.id);
  if (!job || FINISHED.has(job.state)) return; // a late report of a job that has ended
  runs.set(job.id, { ...job, ...progress });
  if (progress.id !== followed) return;
  addPoints(progress.step, progress.metrics);
  renderRun();
}

async function loadRuns() {
  const { jobs } = await api("GET", "/api/jobs");
  runs.clear();
  for (const job of jobs.filter((j) => j.kind === TRAIN)) runs.set(job.id, job);
  if (runs.has(followed)) follow(followed);
  else if (runs.size) follow(Math.max(...runs.keys()));
  else renderRun();
  listRuns();
}

// ---- 2. trained FFN models ----

function modelRow(model) {
  const remove = async () => {
    if (!window.confirm(`Delete the trained FFN model ${model.name}?`)) return;
    try {
      await api("DELETE", `/api/ffn/models/${encodeURIComponent(model.name)}`);
      await refreshModels();
    } catch (failure) {
      window.alert(failure.message);
    }
  };
  const download = `/api/ffn/models/${encodeURIComponent(model.name)}/files/model.keras`;
  return element("tr", { dataset: { model: model.name } },
    element("td", {}, element("strong", {}, model.name)),
    element("td", {}, `${model.preset || "custom"}: FOV ${triple(model.fov)}`,
      element("div", { class: "muted" }, `deltas ${triple(model.deltas)}, depth ${model.depth}, ${model.features} features`)),
    element("td", {}, model.preparation || "–", element("div", { class: "muted" }, model.dataset || "")),
    element("td", {}, String(model.steps ?? "–")),
    element("td", {}, formatTime(model.created_at)),
    element("td", {}, element("div", { class: "row" },
      element("a", { class: "button", href: download, download: "" }, "model.keras"),
      isAdmin ? element("button", { class: "danger", onclick: remove }, "Delete") : null)));
}

async function refreshModels(chosen) {
  const { models } = await api("GET", "/api/ffn/models");
  document.querySelector("#ffn-models tbody").replaceChildren(...models.map(modelRow));
  $("no-models").hidden = models.length > 0;
  $("ffn-models").hidden = models.length === 0;
  await refreshChoices($("infer-options"), "ffn-model");
  const picker = $("infer-options").querySelector("[name=model]");
  if (picker && chosen && models.some((m) => m.name === chosen)) picker.value = chosen;
}

// ---- 4. the segmentations made: proofread, export, evaluate ----

function dojoLink(result) {
  const params = result.layer === "segmentation"
    ? (result.probability_layer ? { ov: result.probability_layer, ovon: "0" } : {})
    : { ov: result.layer, ovon: "1" };
  const query = new URLSearchParams(params).toString();
  return element("a", { class: "button", href: `/dojo/${encodeURIComponent(result.dataset)}${query ? `?${query}` : ""}` },
    "Open in Dojo");
}

function exportControls(result) {
  if (!canExport) return element("span", { class: "muted" }, "proofreaders export");
  const status = element("span", { class: "muted status", "aria-live": "polite" });
  const format = element("select", { "aria-label": `export format of ${result.layer}` },
    ...EXPORT_FORMATS.map((f) => element("option", { value: f }, f)));
  const go = async () => {
    try {
      const task = await api("POST", `/api/datasets/${encodeURIComponent(result.dataset)}/export`,
        { layer: result.layer, format: format.value });
      tasks.set(task.id, status);
      showTask(taskNews.get(task.id) || task);
    } catch (failure) {
      status.textContent = failure.message;
    }
  };
  return element("div", { class: "row" }, format, element("button", { type: "button", onclick: go }, "Export"), status);
}

function showTask(task) {
  const status = tasks.get(task.id);
  if (!status) return;
  taskNews.delete(task.id);
  const download = task.state === "done" && task.result?.download;
  if (download) {
    status.replaceChildren(element("a", { href: download, download: task.result.name }, `Download ${task.result.name}`));
  } else {
    status.textContent = task.state === "failed" ? task.error : `${percent(task)} %`;
  }
}

function evaluateControls(result) {
  const link = element("a", { href: "/evaluation" }, "Evaluate page");
  const truths = (datasets.get(result.dataset)?.layers || [])
    .filter((l) => l.kind === "groundtruth" && l.name !== result.layer);
  if (!kinds[EVALUATE] || !isAdmin || !truths.length) return element("div", {}, link);
  const truth = element("select", { "aria-label": `ground truth to score ${result.layer} against` },
    ...truths.map((l) => element("option", { value: l.name }, l.name)));
  const status = element("span", { class: "muted status", "aria-live": "polite" });
  const go = async () => {
    const options = { dataset: result.dataset, segmentation: result.layer, groundtruth: truth.value };
    if (result.box) options.box = result.box;
    try {
      const job = await api("POST", "/api/jobs", { kind: EVALUATE, options });
      watch(job, status, (done) => status.replaceChildren(
        element("a", { href: `/evaluation?report=${done.result.report}` }, "report"),
        ` rand_f ${Number(done.result.scores?.rand_f).toPrecision(3)}`));
    } catch (failure) {
      status.textContent = failure.message;
    }
  };
  return element("div", { class: "stack" },
    element("div", { class: "row" }, truth, element("button", { type: "button", onclick: go }, "Score")), status, link);
}

function resultRow(result) {
  const name = result.dataset_name || result.dataset;
  const figures = [
    result.objects !== undefined ? `${result.objects} objects` : null,
    result.voxels_per_second ? `${Math.round(result.voxels_per_second).toLocaleString()} voxels/s` : null,
    result.model_share !== undefined ? `${Math.round(100 * result.model_share)} % in the model` : null,
  ].filter(Boolean);
  const gone = result.current ? null : element("div", { class: "muted" }, "replaced or deleted since");
  return element("tr", { dataset: { job: result.job, layer: result.layer }, class: result.current ? "" : "stale" },
    element("td", {}, element("strong", {}, `${name} / ${result.layer}`),
      element("div", { class: "muted" }, element("a", { href: `/jobs/${result.job}` }, `#${result.job}`),
        ` ${result.model || ""} · ${formatTime(result.finished_at)}`), gone),
    element("td", {}, figures.join(", ") || "–"),
    element("td", {}, result.current ? dojoLink(result) : null),
    element("td", {}, result.current ? exportControls(result) : null),
    element("td", {}, result.current ? evaluateControls(result) : null));
}

async function refreshResults() {
  const [{ segmentations }, { datasets: list }] = await Promise.all([
    api("GET", "/api/ffn/segmentations"), api("GET", "/api/datasets")]);
  datasets = new Map(list.map((d) => [d.id, d]));
  const shown = segmentations.slice(0, RESULTS_SHOWN);
  document.querySelector("#results tbody").replaceChildren(...shown.map(resultRow));
  $("no-results").hidden = shown.length > 0;
  $("results").hidden = shown.length === 0;
}

// ---- start ----

connectJobs({
  updated: (job) => {
    const mine = watched.has(job.id);
    if (job.kind === TRAIN) trainingUpdated(job);
    showJob(job);
    if (job.state !== "done") return;
    if (job.kind === PREP) refreshPreparations(mine ? job.result?.preparation : undefined);
    if (job.kind === INFER) refreshResults();
  },
  progress: (progress) => {
    if (runs.has(progress.id)) trainingProgress(progress);
    if (watched.has(progress.id)) showJob({ ...progress, page_url: `/jobs/${progress.id}` });
  },
  reconnected: () => Promise.all([loadRuns(), refreshPreparations(), refreshModels(), refreshResults()]),
});

const datasetsSocket = io(NAMESPACES.DATASETS, { transports: ["websocket", "polling"] });
for (const event of [EVENTS.TASK_PROGRESS, EVENTS.TASK_DONE, EVENTS.TASK_FAILED]) {
  datasetsSocket.on(event, (task) => {
    if (tasks.has(task.id)) showTask(task);
    else taskNews.set(task.id, task);
  });
}

async function start() {
  try {
    const registry = await api("GET", "/api/jobs/kinds");
    for (const kind of registry.kinds) kinds[kind.name] = kind;
    await Promise.all([
      setUpForm(PREP, "prep", (job) => watch(job, $("prep-status"))),
      setUpForm(TRAIN, "train", (job) => {
        if (!runs.has(job.id)) runs.set(job.id, job); // its socket updates may have come first
        follow(job.id);
      }),
      setUpForm(INFER, "infer", (job) => watch(job, $("infer-status"))),
      loadRuns(),
    ]);
    $("train-options").querySelector("[name=preparation]")?.addEventListener("change", applyGeometry);
    await Promise.all([refreshPreparations(), refreshModels(), refreshResults()]);
  } catch (failure) {
    showError("prep-error", failure.message);
  }
  page.dataset.ready = "true";
}

start();
