// Trainer page: pick a model and its options (forms generated from the model's schema and
// the train2d kind's), train as a job and watch its curves live, predict a stack with a
// trained model (infer2d), and list the trained models with their files.
import { api, element, formatBytes } from "/static/api.js";
import {
  connectJobs, FINISHED, formatDuration, formatMetrics, formatTime, percent, showProgress,
} from "/static/jobs_view.js";
import { optionsForm, readOptions, refreshChoices } from "/static/job_form.js";
import { LineChart } from "/static/trainer_chart.js";

const $ = (id) => document.getElementById(id);
const isAdmin = $("trainer-page").dataset.admin === "true";
const TRAIN = "train2d";
const INFER = "infer2d";
const EXPORT = "export2d";
const MODEL_FIELDS = ["model", "model_options"]; // filled from the model picker and its form
const HISTORY_TRIES = 4; // TensorBoard may not have read a new run yet: ask again, 2 s apart
const chart = new LineChart($("loss-chart"), $("chart-legend"));
const kinds = {};
const runs = new Map(); // the train2d jobs, by id
let models = [];
let chosenModel = null;
let followed = null; // the id of the run shown
let prediction = null; // the last prediction job submitted from this page
const exports = new Set(); // export jobs submitted from this page

function showError(id, message) {
  $(id).textContent = message;
  $(id).hidden = !message;
}

function readOnly(container) {
  if (isAdmin) return;
  for (const control of container.querySelectorAll("input, select, textarea")) control.disabled = true;
}

const NOT_SCORES = new Set(["pixels"]); // validation facts that are no curve (a pixel count)

// Curves drawn: the training loss and every validation score.
function plotted(name) {
  return name === "loss" || (name.startsWith("val_") && !NOT_SCORES.has(name.slice(4)));
}

// ---- models ----

function modelCard(model) {
  return element("label", { class: "model-card", dataset: { model: model.name } },
    element("input", { type: "radio", name: "model-choice", value: model.name, onchange: () => pickModel(model.name) }),
    element("span", { class: "title" }, model.title),
    element("span", { class: "muted" }, `${model.name} · ${model.description}`));
}

function brokenCard(broken) {
  return element("div", { class: "model-card broken", dataset: { source: broken.source } },
    element("input", { type: "radio", name: "model-choice", disabled: "", "aria-label": `broken plugin ${broken.source}` }),
    element("span", { class: "title" }, `Broken plugin: ${broken.source}`),
    element("span", { class: "error" }, broken.error));
}

async function pickModel(name) {
  chosenModel = models.find((m) => m.name === name) || null;
  const radio = $("model-picker").querySelector(`input[value="${CSS.escape(name)}"]`);
  if (radio) radio.checked = true;
  $("model-options-title").textContent = chosenModel ? `${chosenModel.title} options` : "";
  const fields = chosenModel ? await optionsForm(chosenModel.schema, chosenModel.fields) : [];
  if (chosenModel?.name !== name) return; // another model was picked meanwhile
  $("model-options").replaceChildren(...fields);
  readOnly($("model-options"));
}

async function setUpModels(preferred) {
  const registry = await api("GET", "/api/models");
  models = registry.models;
  $("model-picker").replaceChildren(...models.map(modelCard), ...registry.broken.map(brokenCard));
  const first = models.find((m) => m.name === preferred) || models[0];
  if (first) await pickModel(first.name);
}

// ---- training ----

async function setUpTraining() {
  const kind = kinds[TRAIN];
  if (!kind) {
    showError("train-error", "Training is not available: the train2d job kind did not load.");
    return;
  }
  const fields = await optionsForm(kind.schema, kind.fields, { skip: MODEL_FIELDS });
  $("train-options").replaceChildren(...fields);
  readOnly($("train-options"));
  $("train-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      if (!chosenModel) throw new Error("Pick a model first.");
      const options = {
        ...readOptions($("train-options"), kind.schema),
        model: chosenModel.name,
        model_options: readOptions($("model-options"), chosenModel.schema),
      };
      const job = await api("POST", "/api/jobs", { kind: TRAIN, options });
      showError("train-error", "");
      if (!runs.has(job.id)) runs.set(job.id, job); // its socket updates may have come first
      follow(job.id);
    } catch (failure) {
      showError("train-error", failure.message);
    }
  });
}

// ---- the run shown, with its curves ----

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
  $("run-state").textContent = job.state === "failed" && job.exit_code !== null && job.exit_code !== undefined
    ? `failed (exit ${job.exit_code})` : job.state;
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

// Live points: the loss at every report; a validation score when its value changes (a
// worker may repeat the last validation in each report).
function addPoints(step, metrics) {
  for (const [name, value] of Object.entries(metrics || {})) {
    if (!plotted(name)) continue;
    const last = chart.last(name);
    if (name === "loss" || !last || last[1] !== value) chart.add(name, [[step, value]]);
  }
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// The whole curves so far, from the job's TensorBoard run (best effort: live points still
// arrive if TensorBoard is unavailable).
async function loadHistory(jobId) {
  const run = `${jobId}/tensorboard`;
  for (let attempt = 0; attempt < HISTORY_TRIES && followed === jobId; attempt += 1) {
    try {
      const tags = Object.keys((await api("GET", "/tensorboard/data/plugin/scalars/tags"))[run] || {});
      for (const tag of tags.filter(plotted)) {
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
  if (job.id === followed) {
    renderRun();
    if (job.state === "done" && before?.state !== "done") loadHistory(job.id); // fill any gap
  } else listRuns();
  if (followed === null) follow(job.id);
  if (job.state === "done") refreshTrained();
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
  const newest = Math.max(...runs.keys());
  if (runs.has(followed)) follow(followed);
  else if (runs.size) follow(newest);
  else renderRun();
  listRuns();
}

// ---- prediction ----

function showPrediction(job) {
  prediction = job;
  const dojo = job.state === "done" ? element("a", { href: `/dojo/${encodeURIComponent(job.options?.dataset || "")}` },
    "open in Dojo") : null;
  const message = job.state === "running" && job.total ? `${percent(job)} %` : job.state;
  $("infer-status").replaceChildren(element("a", { href: job.page_url }, `#${job.id} ${job.title}`),
    `: ${message}`, ...(job.error ? [` — ${job.error}`] : []), ...(dojo ? [" · ", dojo] : []));
}

async function setUpPrediction() {
  const kind = kinds[INFER];
  if (!kind) {
    showError("infer-error", "Prediction is not available: the infer2d job kind did not load.");
    return;
  }
  const fields = await optionsForm(kind.schema, kind.fields);
  $("infer-options").replaceChildren(...fields);
  readOnly($("infer-options"));
  $("infer-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const options = readOptions($("infer-options"), kind.schema);
      showPrediction(await api("POST", "/api/jobs", { kind: INFER, options }));
      showError("infer-error", "");
    } catch (failure) {
      showError("infer-error", failure.message);
    }
  });
}

// ---- trained models ----

function scores(model) {
  const found = model.validation || model.scores || {};
  const numbers = Object.entries(found).filter(([name, v]) => typeof v === "number" && !NOT_SCORES.has(name));
  return numbers.length ? numbers.map(([name, v]) => `${name} ${v.toPrecision(4)}`).join(", ") : "–";
}

function trainedRow(model) {
  const remove = async () => {
    if (!window.confirm(`Delete the trained model ${model.name}?`)) return;
    try {
      await api("DELETE", `/api/trained-models/${encodeURIComponent(model.name)}`);
      await refreshTrained();
    } catch (failure) {
      window.alert(failure.message);
    }
  };
  const files = model.downloads.map((file) => element("a", { href: file.url, download: "", class: "file" },
    `${file.name} (${formatBytes(file.size)})`));
  const training = model.training || {};
  const data = [training.dataset, training.label_layer].filter(Boolean).join(" / ");
  const resolution = model.downsample > 1 ? `at 1/${model.downsample} resolution` : "";
  const steps = [model.steps ? `${model.steps} steps` : "", resolution].filter(Boolean).join(", ");
  return element("tr", { dataset: { model: model.name } },
    element("td", {}, element("strong", {}, model.name),
      element("div", { class: "muted" }, formatTime(model.created_at))),
    element("td", {}, model.model_title || model.model || "–"),
    element("td", {}, data || "–", element("div", { class: "muted" }, steps)),
    element("td", { class: "scores" }, scores(model)),
    element("td", { class: "files" }, ...files),
    element("td", {}, isAdmin ? element("div", { class: "row" }, ...exportControls(model),
      element("button", { class: "danger", onclick: remove }, "Delete")) : null));
}

// Admins write a model as ONNX or a TF SavedModel (an export2d job) to download it.
function exportControls(model) {
  const kind = kinds[EXPORT];
  if (!kind) return [];
  const { enum: formats = [], default: preferred } = kind.schema.properties.format || {};
  const format = element("select", { "aria-label": `export format of ${model.name}` },
    ...formats.filter((f) => f !== "keras").map((f) => element("option", { value: f }, f)));
  if (formats.includes(preferred) && preferred !== "keras") format.value = preferred;
  const run = async () => {
    try {
      const job = await api("POST", "/api/jobs", { kind: EXPORT, options: { model: model.name, format: format.value } });
      exports.add(job.id);
    } catch (failure) {
      window.alert(failure.message);
    }
  };
  return [format, element("button", { onclick: run }, "Export")];
}

let knownTrained = null; // names of the trained models listed last

async function refreshTrained() {
  const { models: trained } = await api("GET", "/api/trained-models");
  document.querySelector("#trained-models tbody").replaceChildren(...trained.map(trainedRow));
  $("no-trained").hidden = trained.length > 0;
  $("trained-models").hidden = trained.length === 0;
  const fresh = knownTrained ? trained.filter((m) => !knownTrained.has(m.name)) : [];
  knownTrained = new Set(trained.map((m) => m.name));
  await refreshChoices($("infer-options"), "trained-model");
  const picker = $("infer-options").querySelector("[name=model]");
  if (picker && fresh.length) picker.value = fresh[0].name; // predict with the model just trained
}

// ---- start ----

connectJobs({
  updated: (job) => {
    if (job.kind === TRAIN) trainingUpdated(job);
    if (job.id === prediction?.id) showPrediction(job);
    if (exports.has(job.id) && FINISHED.has(job.state)) {
      exports.delete(job.id);
      if (job.state === "done") refreshTrained();
      else window.alert(`Export failed: ${job.error || job.state}`);
    }
  },
  progress: (progress) => {
    if (runs.has(progress.id)) trainingProgress(progress);
    if (progress.id === prediction?.id && !FINISHED.has(prediction.state)) {
      showPrediction({ ...prediction, ...progress });
    }
  },
  reconnected: () => loadRuns(),
});

async function start() {
  try {
    const registry = await api("GET", "/api/jobs/kinds");
    for (const kind of registry.kinds) kinds[kind.name] = kind;
    const preferred = kinds[TRAIN]?.schema.properties.model?.default;
    await Promise.all([setUpModels(preferred), setUpTraining(), setUpPrediction(), loadRuns()]);
    await refreshTrained();
  } catch (failure) {
    showError("train-error", failure.message);
  }
  $("trainer-page").dataset.ready = "true";
}

start();
