// Live sync over Socket.IO: join the dataset's room, apply committed edits strictly in version
// order (buffering early ones, asking `since` when a gap stays open), send requests with
// acknowledgements, and catch up after a reconnect without touching the user's view.

import { io } from "/vendor/socket.io.esm.min.js";
import { EVENTS, NAMESPACES } from "/events.js";

const ANSWER_TIMEOUT = 20000;
const GAP_WAIT = 400;

export function transactionId() {
  if (window.crypto?.randomUUID) return crypto.randomUUID();
  // Plain http from another machine is not a secure context: build a v4 UUID by hand.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class Sync {
  /** handlers: {edit(e), locks(l), segment(s), marks(m), presence(p), status(text, live), joined()} */
  constructor(datasetId, version, handlers) {
    this.datasetId = datasetId;
    this.version = version;
    this.handlers = handlers;
    this.buffer = new Map();
    this.gapTimer = null;
    this.joinedOnce = false;
    this.sid = null;
  }

  connect() {
    const socket = io(NAMESPACES.DOJO, { transports: ["websocket", "polling"] });
    this.socket = socket;
    socket.on("connect", () => this.join());
    socket.on("disconnect", () => this.handlers.status("offline — reconnecting…", false));
    socket.on("connect_error", () => this.handlers.status("offline — reconnecting…", false));
    socket.on(EVENTS.DOJO_EDITED, (edit) => this.receive(edit));
    socket.on(EVENTS.DOJO_LOCKS, (payload) => this.handlers.locks(payload.locks));
    socket.on(EVENTS.DOJO_SEGMENT, (payload) => this.handlers.segment(payload));
    socket.on(EVENTS.DOJO_MARKS, (payload) => this.handlers.marks(payload.marks));
    socket.on(EVENTS.DOJO_PRESENCE, (payload) => this.handlers.presence(payload.users));
  }

  async join() {
    this.sid = this.socket.id;
    const answer = await this.request(EVENTS.DOJO_JOIN, { version: this.version });
    if (!answer.ok) {
      this.handlers.status(answer.error, false);
      return;
    }
    for (const edit of answer.edits) this.receive(edit);
    this.handlers.locks(answer.locks);
    this.handlers.presence(answer.presence);
    this.handlers.status("live", true);
    this.handlers.joined(this.joinedOnce);
    this.joinedOnce = true;
  }

  /** Send one event with the dataset; resolve with the acknowledgement (never rejects). */
  request(event, payload = {}) {
    return new Promise((resolve) => {
      if (!this.socket?.connected) {
        resolve({ ok: false, error: "Not connected to the server; your change was not sent." });
        return;
      }
      this.socket.timeout(ANSWER_TIMEOUT).emit(event, { dataset: this.datasetId, ...payload }, (error, answer) => {
        if (error) resolve({ ok: false, error: "The server did not answer in time." });
        else resolve(answer || { ok: false, error: "Empty answer from the server." });
      });
    });
  }

  /** Commit an edit; a committed edit is applied at once (its broadcast is then a no-op). */
  async edit(kind, params) {
    const answer = await this.request(EVENTS.DOJO_EDIT, {
      kind, params, txid: transactionId(), base_version: this.version,
    });
    if (answer.ok && answer.edit) this.receive(answer.edit);
    return answer;
  }

  async history(event, payload = {}) {
    const answer = await this.request(event, { txid: transactionId(), ...payload });
    if (answer.ok && answer.edit) this.receive(answer.edit);
    return answer;
  }

  cursor(z, y, x) {
    if (this.socket?.connected) this.socket.emit(EVENTS.DOJO_CURSOR, { dataset: this.datasetId, z, y, x });
  }

  receive(edit) {
    if (edit.version <= this.version) return;
    if (edit.kind === "replace") {
      // The segmentation was replaced; the edits before are archived: none to wait for.
      for (const v of this.buffer.keys()) if (v < edit.version) this.buffer.delete(v);
      this.version = edit.version - 1;
    }
    this.buffer.set(edit.version, edit);
    this.drain();
    if (this.buffer.size && !this.gapTimer) {
      this.gapTimer = setTimeout(() => this.catchUp(), GAP_WAIT);
    }
  }

  drain() {
    while (this.buffer.has(this.version + 1)) {
      const edit = this.buffer.get(this.version + 1);
      this.buffer.delete(edit.version);
      this.version = edit.version;
      this.handlers.edit(edit);
    }
    for (const v of this.buffer.keys()) if (v <= this.version) this.buffer.delete(v);
  }

  /** Ask for the edits since ours (something else than a client may have made one: a job). */
  async pull() {
    const answer = await this.request(EVENTS.DOJO_SINCE, { since: this.version });
    if (answer.ok) for (const edit of answer.edits) this.receive(edit);
  }

  async catchUp() {
    this.gapTimer = null;
    if (!this.buffer.size) return;
    const answer = await this.request(EVENTS.DOJO_SINCE, { since: this.version });
    if (answer.ok) for (const edit of answer.edits) this.receive(edit);
  }
}
