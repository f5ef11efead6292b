// Filters page: the filter catalog, an ordered pipeline editor (each step's form generated
// from its filter's schema), a live preview of the current slice, saved pipelines (in the
// workspace, or as JSON files), and running the pipeline as a filter-pipeline job.
import { api, element } from "/static/api.js";
import { connectJobs, FINISHED, percent } from "/static/jobs_view.js";
import { optionsForm, readOptions, refreshChoices } from "/static/job_form.js";

const $ = (id) => document.getElementById(id);
const page = $("filters-page");
const isAdmin = page.dataset.admin === "true";
const isEditor = page.dataset.editor === "true";
const KIND = "filter-pipeline";
const FORMAT = { format: "unem-pipeline", version: 1 };
const PREVIEW_DELAY = 200; // ms of quiet before a preview is asked for
const LAYER_DATA = { image: "image", prediction: "prediction", segmentation: "labels", groundtruth: "labels" };
const filters = new Map(); // name → filter (schema, fields, inputs, output, …)
let steps = []; // {filter, item (li), form}
let kind = null; // the filter-pipeline job kind
let datasets = [];
let job = null; // the job submitted from this page
let previewTimer = null;
let previewRequest = 0;
const shownUrls = {};
let shownSource = null; // the slice shown unfiltered: {dataset, layer, z} as JSON

function showError(id, message) {
  $(id).textContent = message;
  $(id).hidden = !message;
}

// ---- the pipeline ----

function flowText(input, filter) {
  const output = filter.output || input;
  return `${input || "?"} → ${output}`;
}

function renumber() {
  let data = LAYER_DATA[chosenLayer()?.kind] || null;
  steps.forEach((step, index) => {
    const head = step.item.querySelector(".step-head");
    head.querySelector(".number").textContent = `${index + 1}.`;
    head.querySelector(".flow").textContent = flowText(data, step.filter);
    data = step.filter.output || data;
    step.item.dataset.index = index;
  });
  $("no-steps").hidden = steps.length > 0;
}

function setValues(form, options) {
  for (const [name, value] of Object.entries(options || {})) {
    const control = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (!control) continue;
    if (control.type === "checkbox") control.checked = Boolean(value);
    else control.value = value;
  }
}

function move(step, by) {
  const index = steps.indexOf(step);
  const target = index + by;
  if (target < 0 || target >= steps.length) return;
  steps.splice(index, 1);
  steps.splice(target, 0, step);
  $("steps").replaceChildren(...steps.map((s) => s.item));
  changed();
}

function remove(step) {
  steps = steps.filter((s) => s !== step);
  step.item.remove();
  changed();
}

async function addStep(name, options) {
  const filter = filters.get(name);
  if (!filter) throw new Error(`Unknown filter ${name}.`);
  const form = element("div", { class: "options" }, ...(await optionsForm(filter.schema, filter.fields)));
  setValues(form, options);
  const step = { filter, form };
  const button = (label, text, action) => element("button", { type: "button", "aria-label": label, title: label, onclick: action }, text);
  step.item = element("li", { class: "step", dataset: { filter: name } },
    element("div", { class: "step-head" },
      element("span", { class: "number" }), element("strong", {}, filter.title),
      element("span", { class: "flow muted" }), element("span", { class: "spacer" }),
      button("Move up", "↑", () => move(step, -1)), button("Move down", "↓", () => move(step, 1)),
      button("Remove step", "✕", () => remove(step))),
    form);
  steps.push(step);
  $("steps").append(step.item);
  changed();
  return step;
}

function pipelineJson() {
  return {
    ...FORMAT,
    name: $("pipeline-name").value.trim(),
    description: "",
    steps: steps.map((s) => ({ filter: s.filter.name, options: readOptions(s.form, s.filter.schema) })),
  };
}

async function loadPipeline(data) {
  if (!data || !Array.isArray(data.steps)) throw new Error("Not a pipeline: it has no list of steps.");
  for (const [index, step] of data.steps.entries()) {
    if (!filters.has(step?.filter)) throw new Error(`Step ${index + 1}: unknown filter ${step?.filter}.`);
  }
  steps = [];
  $("steps").replaceChildren();
  for (const step of data.steps) await addStep(step.filter, step.options);
  if (data.name) $("pipeline-name").value = data.name;
  changed();
}

function changed() {
  renumber();
  page.dataset.steps = steps.length;
  schedulePreview();
}

// ---- the catalog ----

function catalogEntry(filter) {
  const dims = filter.dims.map((d) => d.toUpperCase()).join("/");
  const takes = `${filter.inputs.join("/")} → ${filter.output || "same"}`;
  return element("button", {
    type: "button", title: filter.description, dataset: { filter: filter.name },
    onclick: () => addStep(filter.name).catch((failure) => showError("pipeline-error", failure.message)),
  }, element("span", {}, filter.title), element("span", { class: "muted" }, `${dims} · ${takes}`));
}

function showCatalog(list) {
  const byCategory = new Map();
  for (const filter of list) {
    filters.set(filter.name, filter);
    if (!byCategory.has(filter.category)) byCategory.set(filter.category, []);
    byCategory.get(filter.category).push(filter);
  }
  $("catalog").replaceChildren(...[...byCategory].map(([category, items]) =>
    element("div", { class: "stack category" }, element("h3", {}, category), ...items.map(catalogEntry))));
}

// ---- preview ----

function source() {
  return readOptions($("source-options"), kind.schema);
}

function chosenLayer() {
  if (!kind) return null;
  const { dataset, layer } = source();
  return datasets.find((d) => d.id === dataset)?.layers.find((l) => l.name === layer) || null;
}

function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(() => preview().catch((failure) => showError("preview-error", failure.message)), PREVIEW_DELAY);
}

async function fetchPreview(body) {
  const response = await fetch("/api/filters/preview", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(data.error || `${response.status} ${response.statusText}`);
  }
  return { blob: await response.blob(), headers: response.headers };
}

function show(id, blob) {
  if (shownUrls[id]) URL.revokeObjectURL(shownUrls[id]);
  shownUrls[id] = URL.createObjectURL(blob);
  $(id).src = shownUrls[id];
}

async function preview() {
  if (!kind) return;
  const { dataset, layer } = source();
  if (!dataset || !layer) return;
  const request = ++previewRequest;
  const base = { dataset, layer, z: Number($("slice").value) };
  let pipeline;
  try {
    pipeline = pipelineJson();
  } catch (failure) {
    showError("preview-error", failure.message);
    return;
  }
  const sourceKey = JSON.stringify(base);
  const [original, result] = await Promise.all([
    sourceKey === shownSource ? null : fetchPreview({ ...base, steps: [] }),
    fetchPreview({ ...base, steps: pipeline.steps }).catch((failure) => failure),
  ]);
  if (request !== previewRequest) return; // a newer preview was asked for meanwhile
  if (original) {
    show("preview-source", original.blob);
    shownSource = sourceKey;
  }
  if (result instanceof Error) {
    showError("preview-error", result.message);
    return;
  }
  showError("preview-error", "");
  show("preview-result", result.blob);
  const applied = Number(result.headers.get("X-Preview-Applied"));
  const note = result.headers.get("X-Preview-Note");
  $("preview-result").dataset.applied = applied;
  $("preview-result").dataset.version = request;
  $("result-caption").textContent = applied ? `After step${applied > 1 ? "s" : ""} 1${applied > 1 ? `–${applied}` : ""} (${result.headers.get("X-Preview-Kind")})` : "Result (no step)";
  $("preview-status").textContent = `${result.headers.get("X-Preview-Ms")} ms` + (note ? ` · ${note}` : "");
}

function updateSlices() {
  const dataset = datasets.find((d) => d.id === source().dataset);
  const depth = dataset ? dataset.shape[0] : 1;
  const slider = $("slice");
  slider.max = Math.max(depth - 1, 0);
  if (Number(slider.value) > depth - 1) slider.value = Math.floor(depth / 2);
  $("slice-number").textContent = slider.value;
}

async function setUpSource() {
  const fields = await optionsForm(kind.schema, ["dataset", "layer"]);
  $("source-options").replaceChildren(...fields);
  $("slice").value = Math.floor(((datasets[0]?.shape[0] || 1) - 1) / 2);
  updateSlices();
  $("source-options").addEventListener("change", () => {
    setTimeout(() => { updateSlices(); renumber(); schedulePreview(); }, 50); // after the layers refill
  });
  $("slice").addEventListener("input", () => { $("slice-number").textContent = $("slice").value; schedulePreview(); });
}

// ---- saved pipelines ----

async function refreshSaved(select) {
  const { pipelines } = await api("GET", "/api/pipelines");
  $("saved-pipelines").replaceChildren(...pipelines.map((p) =>
    element("option", { value: p.name }, `${p.name} (${p.filters.length} steps)`)));
  if (select) $("saved-pipelines").value = select;
  $("load-pipeline").disabled = pipelines.length === 0;
  $("delete-pipeline").disabled = !isEditor || pipelines.length === 0;
}

function setUpSaving() {
  const status = (text) => { $("saved-status").textContent = text; };
  const guarded = (action) => async () => {
    try {
      showError("pipeline-error", "");
      await action();
    } catch (failure) {
      showError("pipeline-error", failure.message);
    }
  };
  $("save-pipeline").addEventListener("click", guarded(async () => {
    const name = $("pipeline-name").value.trim();
    if (!name) throw new Error("Name the pipeline first.");
    await api("PUT", `/api/pipelines/${encodeURIComponent(name)}`, pipelineJson());
    await refreshSaved(name);
    status(`Saved as ${name}.`);
  }));
  $("load-pipeline").addEventListener("click", guarded(async () => {
    const name = $("saved-pipelines").value;
    await loadPipeline(await api("GET", `/api/pipelines/${encodeURIComponent(name)}`));
    status(`Loaded ${name}.`);
  }));
  $("delete-pipeline").addEventListener("click", guarded(async () => {
    const name = $("saved-pipelines").value;
    if (!window.confirm(`Delete the saved pipeline ${name}?`)) return;
    await api("DELETE", `/api/pipelines/${encodeURIComponent(name)}`);
    await refreshSaved();
    status(`Deleted ${name}.`);
  }));
  $("download-pipeline").addEventListener("click", guarded(async () => {
    const data = pipelineJson();
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const link = element("a", { href: URL.createObjectURL(blob), download: `${data.name || "pipeline"}.json` });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }));
  $("upload-pipeline").addEventListener("change", guarded(async () => {
    const file = $("upload-pipeline").files[0];
    if (!file) return;
    let data;
    try {
      data = JSON.parse(await file.text());
    } catch {
      throw new Error(`${file.name} is not JSON.`);
    }
    await loadPipeline(data);
    $("upload-pipeline").value = "";
    status(`Loaded ${file.name}.`);
  }));
  $("clear-steps").addEventListener("click", () => loadPipeline({ steps: [] }));
  $("steps").addEventListener("input", schedulePreview);
  $("steps").addEventListener("change", schedulePreview);
}

// ---- running ----

function showJob(update) {
  job = { ...job, ...update };
  const state = job.state || "queued";
  const progress = state === "running" && job.total ? ` ${percent(job)} %` : "";
  const parts = [element("a", { href: job.page_url }, `#${job.id} ${job.title}`), `: ${state}${progress}`];
  if (job.error) parts.push(` — ${job.error}`);
  if (state === "done" && job.result) {
    const dataset = encodeURIComponent(job.result.dataset);
    parts.push(` · layer ${job.result.layer} (${job.result.kind}) added · `,
      element("a", { href: `/dojo/${dataset}` }, "open in Dojo"));
  }
  $("run-status").replaceChildren(...parts);
  $("run-status").dataset.state = state;
}

async function jobFinished() {
  if (job.state !== "done") return;
  datasets = (await api("GET", "/api/datasets")).datasets;
  await refreshChoices($("source-options"), "dataset");
  renumber();
}

async function setUpRunning() {
  const fields = await optionsForm(kind.schema, ["output", "output_kind", "overwrite"]);
  $("run-options").replaceChildren(...fields);
  $("run-pipeline").addEventListener("click", async () => {
    try {
      if (!steps.length) throw new Error("Add a step first.");
      const options = { ...source(), ...readOptions($("run-options"), kind.schema), steps: pipelineJson().steps };
      job = null;
      showJob(await api("POST", "/api/jobs", { kind: KIND, options }));
      showError("run-error", "");
    } catch (failure) {
      showError("run-error", failure.message);
    }
  });
  connectJobs({
    updated: (update) => {
      if (update.id !== job?.id) return;
      showJob(update);
      if (FINISHED.has(update.state)) jobFinished();
    },
    progress: (update) => {
      if (update.id === job?.id && !FINISHED.has(job.state)) showJob(update);
    },
  });
}

// ---- start ----

async function start() {
  try {
    const [catalog, registry, listed] = await Promise.all([
      api("GET", "/api/filters"), api("GET", "/api/jobs/kinds"), api("GET", "/api/datasets"),
    ]);
    showCatalog(catalog.filters);
    datasets = listed.datasets;
    kind = registry.kinds.find((k) => k.name === KIND);
    if (!kind) throw new Error("The filter-pipeline job kind did not load.");
    setUpSaving();
    await Promise.all([setUpSource(), setUpRunning(), refreshSaved()]);
    renumber();
    schedulePreview();
  } catch (failure) {
    showError("pipeline-error", failure.message);
  }
  if (!isAdmin) $("run-pipeline").disabled = true;
  page.dataset.ready = "true";
}

start();
