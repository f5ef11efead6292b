// Live sync over Socket.IO: join the dataset's room on /annotator, send changes with an
// acknowledgement, and hand the room's broadcasts (renames, colours, markers, re-meshed
// segments) to the page.

import { io } from "/vendor/socket.io.esm.min.js";
import { EVENTS, NAMESPACES } from "/events.js";

const ANSWER_TIMEOUT = 20000;

export class Sync {
  /** handlers: {object(o), markers(list), meshUpdated(note), status(text, live), joined(answer, again)} */
  constructor(datasetId, handlers) {
    this.datasetId = datasetId;
    this.handlers = handlers;
    this.joinedOnce = false;
  }

  connect() {
    const socket = io(NAMESPACES.ANNOTATOR, { transports: ["websocket", "polling"] });
    this.socket = socket;
    socket.on("connect", () => this.join());
    socket.on("disconnect", () => this.handlers.status("offline — reconnecting…", false));
    socket.on("connect_error", () => this.handlers.status("offline — reconnecting…", false));
    socket.on(EVENTS.ANNOTATOR_OBJECT, (o) => this.handlers.object(o));
    socket.on(EVENTS.ANNOTATOR_MARKERS, (payload) => this.handlers.markers(payload.markers));
    socket.on(EVENTS.ANNOTATOR_MESH_UPDATED, (note) => this.handlers.meshUpdated(note));
  }

  async join() {
    const answer = await this.request(EVENTS.ANNOTATOR_JOIN);
    if (!answer.ok) {
      this.handlers.status(answer.error, false);
      return;
    }
    this.handlers.status("live", true);
    this.handlers.joined(answer, this.joinedOnce);
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
}
