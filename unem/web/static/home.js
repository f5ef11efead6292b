// Home page: the dataset list, imports with live progress, the demo dataset, the folder picker.
import { io } from "/vendor/socket.io.esm.min.js";
import { EVENTS, NAMESPACES } from "/events.js";
import { api, element, formatBytes } from "/static/api.js";
import { connectJobs } from "/static/jobs_view.js";

const grid = document.getElementById("datasets");
const empty = document.getElementById("empty");
const tasksBox = document.getElementById("tasks");
const taskRows = new Map();

function shapeText(shape) {
  return shape.join(" × ");
}

function addedText(isoTime) {
  const time = new Date(isoTime);
  if (Number.isNaN(time.getTime())) return isoTime;
  return time.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

const EXPORT_FORMATS = ["tiff-multipage", "tiff", "png", "png-colour", "hdf5", "npz", "npy", "zarr"];
const EXPORT_TYPES = { "": "as stored", uint8: "8-bit", uint16: "16-bit" };
let permissions = [];

function exportForm(dataset) {
  const layer = element("select", { "aria-label": "layer to export" },
    ...dataset.layers.map((l) => element("option", { value: l.name }, l.name)));
  const format = element("select", { "aria-label": "export format" },
    ...EXPORT_FORMATS.map((f) => element("option", { value: f }, f)));
  const dtype = element("select", { "aria-label": "export type", title: "Predictions and images are scaled (a probability of 1 is 255 or 65535); label ids are kept" },
    ...Object.entries(EXPORT_TYPES).map(([value, text]) => element("option", { value }, text)));
  const go = element("button", { type: "button", onclick: async () => {
    try {
      showTask(await api("POST", `/api/datasets/${dataset.id}/export`,
                         { layer: layer.value, format: format.value, dtype: dtype.value || null }));
    } catch (failure) {
      alert(failure.message);
    }
  } }, "Export");
  return element("div", { class: "row export" }, layer, format, dtype, go);
}

// One click from a prediction to a segmentation to proofread: the segment-prediction job
// with its defaults (admins only, as every job); it shows up in the jobs list below.
function segmentButtons(dataset) {
  const predictions = dataset.layers.filter((l) => l.kind === "prediction");
  if (!permissions.includes("admin") || !predictions.length) return null;
  return element("div", { class: "segment-predictions" }, ...predictions.map((layer) => {
    const marks = element("select", { "aria-label": `what ${layer.name} marks` },
      element("option", { value: "boundaries" }, "marks boundaries"),
      element("option", { value: "objects" }, "marks objects"));
    const status = element("span", { class: "muted status", "aria-live": "polite" });
    const go = element("button", {
      type: "button", "data-layer": layer.name,
      title: "Segment this prediction (watershed, 3D) into the segmentation you proofread in Dojo; "
        + "the current segmentation is kept as a layer segmentation-before-<time>",
      onclick: async () => {
        try {
          const job = await api("POST", "/api/jobs", { kind: "segment-prediction", options: {
            dataset: dataset.id, layer: layer.name, boundary: marks.value === "boundaries" } });
          status.replaceChildren(element("a", { href: job.page_url }, `job #${job.id} started`));
        } catch (failure) {
          status.textContent = failure.message;
        }
      },
    }, "Segment for proofreading");
    return element("div", { class: "row segment" }, element("span", { class: "layer" }, layer.name),
      marks, go, status);
  }));
}

function datasetCard(dataset) {
  const layers = dataset.layers.map((l) => l.name).join(", ");
  const [vz, vy, vx] = dataset.voxel_size;
  const dojo = `/dojo/${encodeURIComponent(dataset.id)}`;
  return element("article", { class: "card dataset", dataset: { id: dataset.id } },
    element("a", { href: dojo, title: "Proofread in Dojo" },
      element("img", { src: `${dataset.thumbnail}?v=${encodeURIComponent(dataset.created_at)}`,
                       alt: `middle slice of ${dataset.name}`, class: "thumb", loading: "lazy" })),
    element("h3", {}, dataset.name),
    element("div", { class: "row tools" },
      element("a", { href: dojo, class: "button primary" }, "Proofread in Dojo"),
      dataset.layers.some((l) => l.kind === "segmentation")
        ? element("a", { href: `/annotator/${encodeURIComponent(dataset.id)}`, class: "button",
                         title: "See the segments as meshes, name them, drop markers, export" }, "3D annotator")
        : null),
    element("dl", {},
      element("dt", {}, "Voxels"), element("dd", { title: "z × y × x" }, shapeText(dataset.shape)),
      element("dt", {}, "Voxel size"), element("dd", { title: "z × y × x" }, `${vz} × ${vy} × ${vx} nm`),
      element("dt", {}, "Layers"), element("dd", {}, layers),
      element("dt", {}, "On disk"), element("dd", {}, formatBytes(dataset.size_bytes)),
      element("dt", {}, "Added"), element("dd", {}, `${addedText(dataset.created_at)} by ${dataset.created_by}`)),
    segmentButtons(dataset),
    permissions.includes("edit") ? exportForm(dataset) : null);
}

async function refreshDatasets() {
  if (!permissions.length) permissions = (await api("GET", "/api/me")).permissions;
  const { datasets } = await api("GET", "/api/datasets");
  grid.replaceChildren(...datasets.map(datasetCard));
  empty.hidden = datasets.length > 0;
}

function showTask(task) {
  let row = taskRows.get(task.id);
  if (!row) {
    row = element("div", { class: "task", dataset: { task: task.id } },
      element("span", { class: "title" }), element("progress", { max: 1, value: 0 }),
      element("span", { class: "status" }));
    taskRows.set(task.id, row);
    tasksBox.prepend(row);
  }
  row.querySelector(".title").textContent = task.title;
  const bar = row.querySelector("progress");
  bar.max = Math.max(task.total, 1);
  bar.value = task.state === "done" ? bar.max : task.step;
  const percent = task.total ? Math.round((100 * task.step) / task.total) : 0;
  const status = { running: `${percent} %`, done: "done", failed: task.error }[task.state];
  const download = task.state === "done" && task.result && task.result.download;
  if (download) {
    // An export stays listed with its download link until the page is left.
    row.querySelector(".status").replaceChildren(
      element("a", { href: download, download: task.result.name }, `Download ${task.result.name}`));
  } else {
    row.querySelector(".status").textContent = status;
  }
  row.className = `task ${task.state}`;
  if (task.state === "done" && !download) {
    setTimeout(() => { row.remove(); taskRows.delete(task.id); }, 4000);
  }
}

function connect() {
  const socket = io(NAMESPACES.DATASETS, { transports: ["websocket", "polling"] });
  socket.on(EVENTS.TASK_PROGRESS, showTask);
  socket.on(EVENTS.TASK_DONE, showTask);
  socket.on(EVENTS.TASK_FAILED, showTask);
  socket.on(EVENTS.DATASETS_CHANGED, refreshDatasets);
  socket.on("connect", refreshDatasets);  // catch up on anything missed while disconnected
}

// ---- admin: import dialog, folder picker, demo ----
function setupImport() {
  const dialog = document.getElementById("import-dialog");
  if (!dialog) return;
  const form = document.getElementById("import-form");
  const error = document.getElementById("import-error");
  document.getElementById("open-import").addEventListener("click", () => {
    error.hidden = true;
    dialog.showModal();
  });
  document.getElementById("cancel-import").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = new FormData(form);
    const layers = {};
    for (const kind of ["image", "segmentation", "groundtruth", "prediction"]) {
      const path = values.get(`${kind}-path`).trim();
      if (path) layers[kind] = { path, key: values.get(`${kind}-key`).trim() || null };
    }
    const request = {
      name: values.get("name"),
      layers,
      voxel_size: ["vz", "vy", "vx"].map((k) => Number(values.get(k))),
    };
    try {
      showTask(await api("POST", "/api/datasets", request));
      dialog.close();
      form.reset();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  });
  document.getElementById("create-demo").addEventListener("click", async () => {
    try {
      showTask(await api("POST", "/api/datasets/demo", {}));
    } catch (failure) {
      alert(failure.message);
    }
  });
  setupBrowser(form);
}

function setupBrowser(form) {
  const dialog = document.getElementById("browse-dialog");
  const list = document.getElementById("browse-list");
  const where = document.getElementById("browse-path");
  let target = null;
  let current = null;

  async function show(path) {
    const listing = await api("GET", path ? `/api/fs?path=${encodeURIComponent(path)}` : "/api/fs");
    current = listing.path;
    where.textContent = current || "Folders this server may read";
    const items = [];
    if (listing.parent) items.push(entryItem({ name: "..", path: listing.parent, dir: true }));
    // The roots are shown by their full path: "data" alone does not say which folder it is.
    items.push(...listing.entries.map((entry) => entryItem(entry, !listing.path)));
    list.replaceChildren(...items);
  }

  function entryItem(entry, fullPath = false) {
    const name = fullPath ? entry.path : entry.name;
    const label = `${entry.dir ? "📁" : "📄"} ${name}${entry.stack ? "  (stack)" : ""}`;
    return element("li", {},
      element("button", { type: "button", class: "link", onclick: () => {
        // A folder is opened, except a Zarr store, which is a stack to import like a file.
        if (entry.dir && !entry.path.endsWith(".zarr")) show(entry.path);
        else choose(entry.path);
      } }, label));
  }

  function choose(path) {
    form.elements[target].value = path;
    dialog.close();
  }

  for (const button of form.querySelectorAll(".browse")) {
    button.addEventListener("click", () => {
      target = button.dataset.target;
      show(form.elements[target].value.trim() || null).catch(() => show(null));
      dialog.showModal();
    });
  }
  document.getElementById("browse-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("browse-choose").addEventListener("click", () => {
    if (current) choose(current);
  });
}

setupImport();
refreshDatasets();
connect();
// A finished job may have added layers (a prediction, a kept segmentation): show them.
connectJobs({ updated: (job) => job.state === "done" && refreshDatasets() });
