// Jobs page: every job with live progress; admins run jobs from forms generated from the
// kinds' schemas, cancel and resume them.
import { api, element } from "/static/api.js";
import {
  connectJobs, formatDuration, formatMetrics, jobActions, percent, showProgress,
} from "/static/jobs_view.js";
import { optionsForm, readOptions } from "/static/job_form.js";

const page = document.getElementById("jobs-page");
const isAdmin = page.dataset.admin === "true";
const body = document.querySelector("#jobs-table tbody");
const noJobs = document.getElementById("no-jobs");
const jobs = new Map();

function showError(message) {
  const box = document.getElementById("submit-error");
  if (!box) return alert(message);
  box.textContent = message;
  box.hidden = !message;
}

function jobRow(job) {
  const bar = element("progress", { max: 1, value: 0, "aria-label": `progress of job ${job.id}` });
  showProgress(bar, job);
  const stateText = job.state === "failed" && job.exit_code !== null
    ? `failed (exit ${job.exit_code})` : job.state;
  return element("tr", { class: `job ${job.state}`, dataset: { job: job.id, state: job.state } },
    element("td", {}, element("a", { href: job.page_url }, `${job.id}`)),
    element("td", {}, element("a", { href: job.page_url, class: "title" }, job.title),
      element("div", { class: "muted" }, `${job.kind} · ${job.resource}`)),
    element("td", { class: "state", title: job.error || "" }, stateText),
    element("td", { class: "progress" }, bar,
      element("span", { class: "percent" }, `${percent(job)} %`),
      element("div", { class: "muted message" }, job.error || job.message || "")),
    element("td", { class: "eta" }, job.state === "running" ? formatDuration(job.eta_seconds) : "–"),
    element("td", { class: "metrics" }, formatMetrics(job.metrics)),
    element("td", {}, job.user),
    element("td", {}, element("div", { class: "row actions" }, ...jobActions(job, isAdmin, showError))));
}

function render(job) {
  jobs.set(job.id, job);
  const row = jobRow(job);
  const old = body.querySelector(`tr[data-job="${job.id}"]`);
  if (old) old.replaceWith(row);
  else {
    const newer = [...body.children].find((r) => Number(r.dataset.job) < job.id);
    body.insertBefore(row, newer || null);
  }
  noJobs.hidden = jobs.size > 0;
}

async function refresh() {
  const data = await api("GET", "/api/jobs");
  body.replaceChildren();
  jobs.clear();
  for (const job of data.jobs.reverse()) render(job);
  noJobs.hidden = jobs.size > 0;
}

connectJobs({
  updated: render,
  progress: (progress) => {
    const job = jobs.get(progress.id);
    if (job && job.state === "running") render({ ...job, ...progress });
  },
  reconnected: refresh,
});

async function setUpForm() {
  const form = document.getElementById("submit-job");
  if (!form) return;
  const { kinds, broken } = await api("GET", "/api/jobs/kinds");
  const select = document.getElementById("job-kind");
  const description = document.getElementById("kind-description");
  const options = document.getElementById("job-options");
  select.replaceChildren(...kinds.map((k) => element("option", { value: k.name }, k.title)));
  const chosen = () => kinds.find((k) => k.name === select.value);
  let shown = 0;
  const showKind = async () => {
    const ticket = ++shown;
    const kind = chosen();
    const fields = kind ? await optionsForm(kind.schema, kind.fields) : [];
    if (ticket !== shown) return; // another kind was chosen meanwhile
    description.textContent = kind ? `${kind.description} (${kind.resource})` : "";
    options.replaceChildren(...fields);
  };
  select.addEventListener("change", showKind);
  await showKind();
  if (broken.length) {
    const box = document.getElementById("broken-plugins");
    box.textContent = "Plugins that failed to load: " +
      broken.map((b) => `${b.source}: ${b.error}`).join("; ");
    box.hidden = false;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const job = await api("POST", "/api/jobs",
                            { kind: select.value, options: readOptions(options, chosen().schema) });
      render(job);
      showError("");
    } catch (failure) {
      showError(failure.message);
    }
  });
}

refresh();
setUpForm();
