// Shared by the jobs pages and the home page: the /jobs socket, and how a job is shown.
import { io } from "/vendor/socket.io.esm.min.js";
import { EVENTS, NAMESPACES } from "/events.js";
import { api, element } from "/static/api.js";

export const FINISHED = new Set(["done", "failed", "cancelled", "interrupted"]);

// Calls handlers.updated(job), .progress({id, step, ...}), .log({id, lines}); on reconnect,
// handlers.reconnected() lets the page refetch what it missed.
export function connectJobs(handlers) {
  const socket = io(NAMESPACES.JOBS, { transports: ["websocket", "polling"] });
  socket.on(EVENTS.JOB_UPDATED, (job) => handlers.updated?.(job));
  socket.on(EVENTS.JOB_PROGRESS, (progress) => handlers.progress?.(progress));
  socket.on(EVENTS.JOB_LOG, (entry) => handlers.log?.(entry));
  let connectedBefore = false;
  socket.on("connect", () => {
    if (connectedBefore) handlers.reconnected?.();
    connectedBefore = true;
  });
  return socket;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function formatMetrics(metrics) {
  const entries = Object.entries(metrics || {}).filter(([name]) => name !== "sent");
  if (!entries.length) return "–";
  return entries.map(([name, value]) => `${name} ${Number(value).toPrecision(4)}`).join(", ");
}

export function formatTime(iso) {
  if (!iso) return "–";
  const time = new Date(iso);
  return Number.isNaN(time.getTime()) ? iso : time.toLocaleString();
}

export function percent(job) {
  if (job.state === "done") return 100;
  return job.total ? Math.floor((100 * job.step) / job.total) : 0;
}

// Fill a <progress>: a determinate bar once the total is known, indeterminate before.
export function showProgress(bar, job) {
  if (job.state === "done") {
    bar.max = 1;
    bar.value = 1;
  } else if (job.total > 0) {
    bar.max = job.total;
    bar.value = Math.min(job.step, job.total);
  } else if (job.state === "running") {
    bar.removeAttribute("value");
  } else {
    bar.value = 0;
  }
}

// Cancel / Resume buttons (admins), the log and the TensorBoard run (everyone).
export function jobActions(job, isAdmin, onError) {
  const act = (verb) => async () => {
    try {
      await api("POST", `/api/jobs/${job.id}/${verb}`, {});
    } catch (failure) {
      onError(failure.message);
    }
  };
  const buttons = [];
  if (isAdmin && (job.state === "queued" || job.state === "running")) {
    buttons.push(element("button", { class: "danger", onclick: act("cancel") }, "Cancel"));
  }
  if (isAdmin && job.can_resume) {
    buttons.push(element("button", { onclick: act("resume") }, "Resume"));
  }
  buttons.push(element("a", { href: job.log_url, class: "button", download: `job-${job.id}.log` }, "Log"));
  buttons.push(element("a", { href: job.tensorboard_url, class: "button", target: "_blank",
                               rel: "noopener" }, "TensorBoard"));
  return buttons;
}
