// One job: live state, progress, metrics and log tail; cancel / resume for admins.
import { api } from "/static/api.js";
import {
  connectJobs, formatDuration, formatMetrics, formatTime, jobActions, percent, showProgress,
} from "/static/jobs_view.js";

const page = document.getElementById("job-page");
const jobId = Number(page.dataset.job);
const isAdmin = page.dataset.admin === "true";
const logBox = document.getElementById("job-log");
const MAX_LOG_LINES = 2000;
let job = null;

const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("job-error");
  box.textContent = message;
  box.hidden = !message;
}

function render() {
  $("job-title").textContent = job.title;
  $("job-state").textContent = job.state === "failed" && job.exit_code !== null
    ? `failed (exit ${job.exit_code})` : job.state;
  $("job-state").className = `state ${job.state}`;
  showProgress($("job-bar"), job);
  $("job-percent").textContent = `${percent(job)} %` + (job.total ? ` · ${job.step} / ${job.total}` : "");
  $("job-message").textContent = job.message || "";
  $("job-eta").textContent = job.state === "running" ? formatDuration(job.eta_seconds) : "–";
  $("job-created").textContent = `${formatTime(job.created_at)} by ${job.user}`;
  $("job-started").textContent = formatTime(job.started_at);
  $("job-finished").textContent = formatTime(job.finished_at);
  $("job-metrics").textContent = formatMetrics(job.metrics);
  $("job-options").textContent = JSON.stringify(job.options, null, 2);
  $("job-result-box").hidden = job.result === null || job.result === undefined;
  $("job-result").textContent = JSON.stringify(job.result, null, 2);
  const lines = job.last_lines?.length ? `\nLast lines:\n${job.last_lines.join("\n")}` : "";
  showError(job.error ? job.error + lines : "");
  $("job-actions").replaceChildren(...jobActions(job, isAdmin, showError));
}

function appendLog(lines) {
  const stick = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
  const text = logBox.textContent + lines.map((l) => l + "\n").join("");
  const all = text.split("\n");
  logBox.textContent = all.length > MAX_LOG_LINES ? all.slice(-MAX_LOG_LINES).join("\n") : text;
  if (stick) logBox.scrollTop = logBox.scrollHeight;
}

async function refresh() {
  const data = await api("GET", `/api/jobs/${jobId}`);
  const { log_tail: tail, ...rest } = data;
  job = rest;
  logBox.textContent = "";
  appendLog(tail);
  render();
}

connectJobs({
  updated: (update) => {
    if (update.id !== jobId) return;
    job = update;
    render();
  },
  progress: (progress) => {
    if (progress.id !== jobId || !job || job.state !== "running") return;
    job = { ...job, ...progress };
    render();
  },
  log: (entry) => {
    if (entry.id === jobId && job) appendLog(entry.lines);
  },
  reconnected: refresh,
});

refresh();
