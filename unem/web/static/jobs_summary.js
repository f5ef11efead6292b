// Home page: the running and latest jobs with live progress bars; all of them on /jobs.
import { api, element } from "/static/api.js";
import { connectJobs, formatDuration, percent, showProgress } from "/static/jobs_view.js";

const box = document.getElementById("jobs-summary");
const SHOWN = 5;
const jobs = new Map();

function row(job) {
  const bar = element("progress", { max: 1, value: 0 });
  showProgress(bar, job);
  const eta = job.state === "running" && job.eta_seconds !== null ? ` · ${formatDuration(job.eta_seconds)} left` : "";
  return element("div", { class: `task ${job.state}`, dataset: { job: job.id } },
    element("a", { href: job.page_url, class: "title" }, `#${job.id} ${job.title}`), bar,
    element("span", { class: "status" }, `${job.state} · ${percent(job)} %${eta}`));
}

function render() {
  const latest = [...jobs.values()].sort((a, b) => b.id - a.id).slice(0, SHOWN);
  box.replaceChildren(...latest.map(row));
  box.hidden = latest.length === 0;
}

async function refresh() {
  const data = await api("GET", "/api/jobs");
  jobs.clear();
  for (const job of data.jobs.slice(0, SHOWN)) jobs.set(job.id, job);
  render();
}

connectJobs({
  updated: (job) => { jobs.set(job.id, job); render(); },
  progress: (progress) => {
    const job = jobs.get(progress.id);
    if (job && job.state === "running") { jobs.set(job.id, { ...job, ...progress }); render(); }
  },
  reconnected: refresh,
});
refresh();
