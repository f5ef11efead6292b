// The Evaluate page: pick a segmentation and a ground truth, run an `evaluate` job (admins),
// list the reports and show one: its scores explained, the per-slice chart, and the worst
// split objects and merging segments, each with a link that opens Dojo there.
import { api, element } from "/static/api.js";
import { SliceChart } from "/static/evaluation_chart.js";
import { connectJobs, FINISHED, formatTime, showProgress } from "/static/jobs_view.js";

const $ = (id) => document.getElementById(id);
const page = $("evaluation-page");
const isAdmin = page.dataset.admin === "true";
const SEGMENTATION_KINDS = new Set(["segmentation", "groundtruth", "prediction"]);
const LABEL_KINDS = new Set(["segmentation", "groundtruth"]);
const DOJO_OWN_LAYERS = new Set(["image", "segmentation"]); // Dojo draws these itself
const CURVES = {
  instance: { left: ["rand_split", "rand_merge", "rand_f"], right: ["vi_split", "vi_merge"] },
  semantic: { left: ["jaccard", "dice", "precision", "recall"], right: [] },
};

let datasets = [];
let watched = null; // the id of the job this page started
let shown = null; // the report on show
const chart = new SliceChart($("slice-chart"), $("slice-legend"));

function fill(select, items, keep) {
  select.replaceChildren(...items.map(([value, text]) => element("option", { value }, text)));
  if (items.some(([value]) => value === keep)) select.value = keep;
}

function layersOf(id, kinds) {
  const dataset = datasets.find((d) => d.id === id);
  return (dataset?.layers || []).filter((l) => kinds.has(l.kind)).map((l) => [l.name, `${l.name} (${l.kind})`]);
}

function fillLayers() {
  const id = $("eval-dataset").value;
  const dataset = datasets.find((d) => d.id === id);
  fill($("eval-segmentation"), layersOf(id, SEGMENTATION_KINDS), $("eval-segmentation").value || "segmentation");
  const sameShape = datasets.filter((d) => d.id !== id && String(d.shape) === String(dataset?.shape));
  fill($("eval-groundtruth-dataset"), [["", "the same dataset"], ...sameShape.map((d) => [d.id, d.name])],
    $("eval-groundtruth-dataset").value);
  const truthId = $("eval-groundtruth-dataset").value || id;
  fill($("eval-groundtruth"), layersOf(truthId, LABEL_KINDS), $("eval-groundtruth").value || "groundtruth");
}

async function loadDatasets() {
  datasets = (await api("GET", "/api/datasets")).datasets;
  fill($("eval-dataset"), datasets.map((d) => [d.id, `${d.name} (${d.id})`]), $("eval-dataset").value);
  fillLayers();
}

function showError(message) {
  $("evaluate-error").textContent = message || "";
  $("evaluate-error").hidden = !message;
}

function readForm() {
  const options = {
    dataset: $("eval-dataset").value, segmentation: $("eval-segmentation").value,
    groundtruth_dataset: $("eval-groundtruth-dataset").value, groundtruth: $("eval-groundtruth").value,
    mode: $("eval-mode").value, slices: $("eval-slices").value.trim(),
  };
  if (options.mode === "semantic") options.threshold = Number($("eval-threshold").value);
  return options;
}

async function submit(event) {
  event.preventDefault();
  showError("");
  try {
    const job = await api("POST", "/api/jobs", { kind: "evaluate", options: readForm() });
    watched = job.id;
    jobChanged(job);
  } catch (failure) {
    showError(failure.message);
  }
}

function jobChanged(job) {
  if (job.id !== watched) return;
  const bar = $("evaluate-progress");
  bar.hidden = FINISHED.has(job.state);
  showProgress(bar, job);
  $("evaluate-status").textContent = `Job #${job.id} ${job.state}${job.message ? ` · ${job.message}` : ""}`;
  if (job.state === "done" && job.result?.report) {
    watched = null;
    loadReports().then(() => openReport(job.result.report));
  } else if (FINISHED.has(job.state)) {
    watched = null;
    showError(job.error || `The evaluation ${job.state}.`);
  }
}

function format(value) {
  if (value === null || value === undefined) return "–";
  return Number.isInteger(value) ? value.toLocaleString() : Number(value.toPrecision(4)).toString();
}

function headline(report) {
  return `${report.headline} ${format(report.scores[report.headline])}`;
}

function reportRow(report) {
  const open = element("button", { class: "link", onclick: () => openReport(report.id) }, "Open");
  const remove = isAdmin ? element("button", { class: "link danger", onclick: () => removeReport(report.id) }, "Delete") : null;
  return element("tr", { dataset: { report: report.id } },
    element("td", {}, `#${report.id}`), element("td", {}, formatTime(report.created_at)),
    element("td", {}, `${report.dataset}/${report.segmentation}`),
    element("td", {}, `${report.groundtruth_dataset}/${report.groundtruth}`),
    element("td", {}, report.mode), element("td", {}, headline(report)),
    element("td", {}, element("span", { class: "row" }, open,
      element("a", { href: report.csv_url, download: "" }, "CSV"), remove)));
}

async function loadReports() {
  const { reports } = await api("GET", "/api/evaluations");
  $("reports").querySelector("tbody").replaceChildren(...reports.map(reportRow));
  $("no-reports").hidden = reports.length > 0;
  $("reports").hidden = reports.length === 0;
}

async function removeReport(id) {
  if (!window.confirm(`Delete evaluation report #${id}?`)) return;
  await api("DELETE", `/api/evaluations/${id}`);
  if (shown === id) $("report").hidden = true;
  await loadReports();
}

// Dojo opens at the offender's voxel, the segment selected (the proofread layer only: Dojo
// shows that one), and the ground truth (or the scored layer) as its overlay.
export function dojoLink(report, offender, merged) {
  const [z, y, x] = offender.location;
  const params = new URLSearchParams({ z, x, y, zoom: 2 });
  const proofread = report.segmentation === "segmentation";
  const segment = merged ? offender.id : offender.overlaps.map(([id]) => id).find((id) => id !== 0);
  if (proofread && segment) params.set("sel", segment);
  const sameDataset = report.groundtruth_dataset === report.dataset;
  const overlay = proofread ? (sameDataset ? report.groundtruth : null) : report.segmentation;
  if (overlay && !DOJO_OWN_LAYERS.has(overlay)) {
    params.set("ov", overlay);
    params.set("ovon", "1");
  }
  return `/dojo/${encodeURIComponent(report.dataset)}?${params}`;
}

function offenderRow(report, offender, merged) {
  const overlaps = offender.overlaps.map(([id, voxels]) => `${id}: ${format(voxels)}`).join(", ");
  const link = element("a", { href: dojoLink(report, offender, merged), class: "dojo-link" }, "Open in Dojo");
  return element("tr", { dataset: { id: offender.id } },
    element("td", {}, String(offender.id)), element("td", {}, format(offender.voxels)),
    element("td", {}, format(offender.bits)), element("td", {}, String(offender.partners)),
    element("td", {}, overlaps), element("td", {}, link));
}

function showScores(report) {
  const names = [...Object.keys(report.scores), "voxels"];
  const value = (name) => (name === "voxels" ? report.voxels : report.scores[name]);
  $("scores").querySelector("tbody").replaceChildren(...names.map((name) => element("tr", { dataset: { score: name } },
    element("th", {}, element("code", {}, name)), element("td", { class: "value" }, format(value(name))),
    element("td", { class: "muted" }, report.explanations[name] || ""))));
}

function showOffenders(report) {
  const offenders = report.offenders;
  $("offenders").hidden = !offenders;
  if (!offenders) return;
  const rows = (list, merged) => list.map((o) => offenderRow(report, o, merged));
  const empty = (text) => element("tr", {}, element("td", { colspan: 6, class: "muted" }, text));
  $("most-split").querySelector("tbody").replaceChildren(...(offenders.most_split.length
    ? rows(offenders.most_split, false) : [empty("No object is split.")]));
  $("most-merged").querySelector("tbody").replaceChildren(...(offenders.most_merged.length
    ? rows(offenders.most_merged, true) : [empty("No segment merges objects.")]));
}

async function openReport(id) {
  const report = await api("GET", `/api/evaluations/${id}`);
  shown = report.id;
  $("report").hidden = false;
  $("report").dataset.report = report.id;
  $("report-title").textContent = `#${report.id} ${report.dataset}/${report.segmentation} vs ${report.groundtruth_dataset}/${report.groundtruth}`;
  const counts = report.mode === "instance" ? `, ${format(report.objects)} ground-truth objects, ${format(report.segments)} segments` : "";
  const versions = Object.entries(report.versions).map(([d, v]) => `${d} at edit ${v}`).join(", ");
  $("report-facts").textContent = `${report.mode} mode · ${format(report.voxels)} voxels scored${counts} · `
    + `slices ${report.options.slices || "all"} · ${versions} · ${formatTime(report.created_at)} by ${report.user}`;
  $("report-csv").href = report.csv_url;
  $("report-job").hidden = !report.job_id;
  $("report-job").href = `/jobs/${report.job_id}`;
  showScores(report);
  chart.show(report.per_slice, CURVES[report.mode].left, CURVES[report.mode].right);
  showOffenders(report);
  history.replaceState(null, "", `${location.pathname}?report=${report.id}`);
}

$("evaluate-form").addEventListener("submit", submit);
$("eval-dataset").addEventListener("change", fillLayers);
$("eval-groundtruth-dataset").addEventListener("change", fillLayers);
$("eval-mode").addEventListener("change", () => { $("threshold-field").hidden = $("eval-mode").value !== "semantic"; });
$("threshold-field").hidden = true;
connectJobs({ updated: jobChanged, progress: (p) => watched === p.id && jobChanged({ ...p, state: "running" }) });
Promise.all([loadDatasets(), loadReports()]).then(async () => {
  const wanted = Number(new URLSearchParams(location.search).get("report"));
  if (wanted) await openReport(wanted);
}).catch((failure) => showError(failure.message))
  .finally(() => { page.dataset.ready = "true"; });
