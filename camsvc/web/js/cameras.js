// The camera grid: status, newest frame, stream URLs, and per-camera actions, kept live by
// camera_status_update, recording_status_update and the topic events (API.md §9).

import { byId, formatDuration, formatTime, h, toast } from "./dom.js";
import { fetchBlobUrl } from "./media.js";

const LIVE_INTERVAL_MS = 2000;
const LIVE_MAX_WIDTH = 640;

const STREAM_LABELS = [
  ["rtsp", "RTSP"],
  ["webrtc", "WebRTC (WHEP)"],
  ["hls", "HLS"],
];

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain http:// on another host is not a secure context: the older way still works there.
  const area = h("textarea", { readonly: true, class: "offscreen" }, text);
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  if (!copied) throw new Error("the browser refused to copy");
}

class CameraCard {
  constructor(view, camera) {
    this.view = view;
    this.app = view.app;
    this.device = camera.device;
    this.camera = camera;
    this.recording = camera.recording ? { since: null, duration: null } : null;
    this.streaming = false;
    this.frame = { filename: null, pending: null, url: null, request: 0 };
    this.live = null;
    this.recBusy = false;
    this.build();
    this.update(camera);
  }

  build() {
    const app = this.app;
    const id = `cam-${this.device}`;
    this.statusEl = h("span", { class: "status", dataset: { field: "status" } });
    this.metaEl = h("p", { class: "meta" });
    this.img = h("img", { alt: `Newest frame of ${this.device}`, hidden: true });
    this.placeholder = h("span", { class: "placeholder" }, "No snapshot yet");
    this.caption = h("figcaption", { class: "muted" });
    // Not a live region: it ticks every second, which a screen reader would read out each time.
    this.recEl = h("p", { class: "rec", dataset: { field: "recording" }, hidden: true });
    this.urlInputs = {};
    const urlRows = STREAM_LABELS.map(([key, label]) => {
      const input = h("input", {
        type: "text",
        readonly: true,
        "aria-label": `${label} URL of ${this.device}`,
        dataset: { stream: key },
      });
      this.urlInputs[key] = input;
      const copy = h(
        "button",
        { type: "button", class: "quiet", "aria-label": `Copy ${label} URL of ${this.device}` },
        "Copy",
      );
      copy.addEventListener("click", async () => {
        try {
          await copyText(input.value);
          toast(`${label} URL copied`);
        } catch (error) {
          input.select();
          toast(`Copy failed (${error.message}); the URL is selected`, "error");
        }
      });
      return h("div", { class: "url" }, h("span", { class: "url-label" }, label), input, copy);
    });

    const actions = [];
    if (app.can("take_snapshot")) {
      this.snapButton = h("button", { type: "button", dataset: { action: "snapshot" } }, "Snapshot");
      this.snapButton.addEventListener("click", () => this.takeSnapshot());
      actions.push(this.snapButton);
    }
    if (app.can("start_recording")) {
      this.durationInput = h("input", {
        type: "number",
        min: 1,
        max: 86400,
        step: 1,
        placeholder: "until stop",
        "aria-label": `Recording duration of ${this.device} in seconds`,
        dataset: { field: "duration" },
      });
      this.recButton = h("button", { type: "button", dataset: { action: "record" } }, "Record");
      this.recButton.addEventListener("click", () => this.toggleRecording());
      actions.push(h("span", { class: "record" }, this.durationInput, h("span", { class: "unit" }, "s"), this.recButton));
    }
    if (app.can("start_streaming")) {
      this.streamButton = h("button", { type: "button", dataset: { action: "stream" } }, "Start stream");
      this.streamButton.addEventListener("click", () => this.toggleStreaming());
      actions.push(this.streamButton);
    }
    if (app.can("take_snapshot") && app.can("delete_snapshot")) {
      this.liveBox = h("input", { type: "checkbox", dataset: { action: "live" } });
      this.liveBox.addEventListener("change", () => this.setLive(this.liveBox.checked));
      actions.push(h("label", { class: "inline live" }, this.liveBox, "Live"));
    }

    this.element = h(
      "article",
      { class: "card camera", id, dataset: { device: this.device }, "aria-labelledby": `${id}-title` },
      h("header", {}, h("h2", { id: `${id}-title` }, this.device), this.statusEl),
      this.metaEl,
      h("figure", { class: "frame" }, this.img, this.placeholder, this.caption),
      this.recEl,
      h("details", { class: "urls" }, h("summary", {}, "Stream URLs"), ...urlRows),
      actions.length ? h("div", { class: "actions" }, ...actions) : null,
    );
  }

  update(camera) {
    this.camera = { ...this.camera, ...camera };
    const { status, name, resolution, fps, streams } = this.camera;
    this.statusEl.textContent = status;
    this.statusEl.className = `status status-${status}`;
    this.element.dataset.status = status;
    this.metaEl.textContent = `${name} · ${resolution} · ${fps} fps`;
    for (const [key] of STREAM_LABELS) this.urlInputs[key].value = streams?.[key] ?? "";
    const connected = status === "CONNECTED";
    if (this.snapButton) this.snapButton.disabled = !connected;
    if (this.streamButton) this.streamButton.disabled = !connected;
    if (this.liveBox) this.liveBox.disabled = !connected;
    if (!connected && this.live) this.setLive(false);
    this.renderRecording();
  }

  // -- frames ----------------------------------------------------------------------------

  /** Show a snapshot; `quiet` for frames others took (one may be gone by the time we ask). */
  async showFrame(filename, downloadUrl, when, quiet = false) {
    if (filename === this.frame.filename || filename === this.frame.pending) return;
    const request = ++this.frame.request;
    this.frame.pending = filename;
    let url;
    try {
      url = await fetchBlobUrl(this.app.token, downloadUrl);
    } catch (error) {
      if (request === this.frame.request) {
        this.frame.pending = null;
        if (!quiet) this.app.report("Loading the frame", error);
      }
      return;
    }
    if (request !== this.frame.request) {
      URL.revokeObjectURL(url); // a newer frame was asked for meanwhile
      return;
    }
    if (this.frame.url) URL.revokeObjectURL(this.frame.url);
    this.frame.pending = null;
    this.frame.filename = filename;
    this.frame.url = url;
    this.img.src = url;
    this.img.dataset.filename = filename;
    this.img.hidden = false;
    this.placeholder.hidden = true;
    this.caption.textContent = `${filename} · ${formatTime(when)}`;
  }

  async loadNewestFrame() {
    try {
      const list = await this.app.call("list_snapshots", { device: this.device, limit: 1 });
      const newest = list.files[0];
      if (newest) {
        await this.showFrame(newest.filename, newest.download_url, newest.modified_time, true);
      }
    } catch (error) {
      this.app.report("Listing snapshots", error);
    }
  }

  async takeSnapshot(params = {}) {
    if (this.snapButton) this.snapButton.disabled = true;
    try {
      const shot = await this.app.call("take_snapshot", { device: this.device, ...params });
      await this.showFrame(shot.filename, shot.download_url, shot.timestamp);
      return shot;
    } catch (error) {
      this.app.report("Snapshot", error);
      return null;
    } finally {
      if (this.snapButton) this.snapButton.disabled = this.camera.status !== "CONNECTED";
    }
  }

  /** Live mode: a small snapshot every LIVE_INTERVAL_MS, each one replacing the last. */
  setLive(on) {
    if (this.liveBox) this.liveBox.checked = on;
    if (!on) {
      if (this.live) clearTimeout(this.live.timer);
      this.live = null;
      return;
    }
    if (this.live) return;
    const live = { timer: null, previous: null };
    this.live = live;
    const step = async () => {
      // Live frames carry their own names so that only they are ever deleted here.
      const filename = `${this.device}_live_${Date.now()}`;
      const shot = await this.takeSnapshot({ filename, max_width: LIVE_MAX_WIDTH });
      if (shot && live.previous) {
        this.app.call("delete_snapshot", { filename: live.previous }).catch(() => {});
      }
      if (shot) live.previous = shot.filename;
      if (this.live === live) live.timer = setTimeout(step, LIVE_INTERVAL_MS);
    };
    step();
  }

  // -- recording ----------------------------------------------------------------------------

  async toggleRecording() {
    this.recBusy = true;
    this.recButton.disabled = true;
    try {
      if (this.recording) {
        const stopped = await this.app.call("stop_recording", { device: this.device });
        this.recording = null;
        toast(`Recorded ${stopped.filename} (${formatDuration(stopped.duration)})`);
      } else {
        const params = { device: this.device };
        const duration = Number(this.durationInput.value);
        if (this.durationInput.value !== "" && duration > 0) params.duration = duration;
        const started = await this.app.call("start_recording", params);
        this.recording = {
          since: Date.parse(started.start_time),
          duration: started.duration,
          filename: started.filename,
        };
      }
    } catch (error) {
      this.app.report("Recording", error);
    } finally {
      this.recBusy = false;
      this.renderRecording();
    }
  }

  recordingStatus(params) {
    if (params.status === "STARTED") {
      this.recording ??= { since: Date.now(), duration: params.duration, filename: params.filename };
    } else {
      this.recording = null;
      if (params.status === "ERROR") {
        toast(`Recording on ${this.device} ended: ${params.reason ?? "error"}`, "error");
      }
    }
    this.renderRecording();
  }

  recordingEvent(topic, data) {
    if (topic === "recording.start") {
      this.recording = {
        since: Date.parse(data.start_time),
        duration: data.duration,
        filename: data.filename,
      };
    } else if (topic === "recording.progress" && this.recording) {
      this.recording.since = Date.now() - data.elapsed * 1000;
    }
    this.renderRecording();
  }

  renderRecording() {
    const rec = this.recording;
    this.recEl.hidden = !rec;
    this.element.dataset.recording = rec ? "true" : "false";
    if (rec) {
      const elapsed = rec.since == null ? "" : formatDuration((Date.now() - rec.since) / 1000);
      const limit = rec.duration ? ` / ${formatDuration(rec.duration)}` : "";
      this.recEl.textContent = `● REC ${elapsed}${limit}`;
    }
    if (this.recButton) {
      this.recButton.textContent = rec ? "Stop recording" : "Record";
      this.recButton.classList.toggle("danger", Boolean(rec));
      // A recording can be stopped whatever the camera's state; a new one needs it connected.
      // While a start or stop is on its way the button stays off (the ticker calls this too).
      this.recButton.disabled = this.recBusy || (!rec && this.camera.status !== "CONNECTED");
    }
  }

  // -- streaming ------------------------------------------------------------------------------

  async loadStreamState() {
    try {
      const info = await this.app.call("get_stream_url", { device: this.device });
      this.setStreaming(info.stream_status === "READY");
    } catch {
      this.setStreaming(false); // a camera that is not CONNECTED has no stream
    }
  }

  setStreaming(on) {
    this.streaming = on;
    this.element.dataset.streaming = on ? "true" : "false";
    if (this.streamButton) this.streamButton.textContent = on ? "Stop stream" : "Start stream";
  }

  async toggleStreaming() {
    this.streamButton.disabled = true;
    try {
      if (this.streaming) {
        await this.app.call("stop_streaming", { device: this.device });
        this.setStreaming(false);
      } else {
        await this.app.call("start_streaming", { device: this.device });
        this.setStreaming(true);
      }
    } catch (error) {
      this.app.report("Streaming", error);
    } finally {
      this.streamButton.disabled = this.camera.status !== "CONNECTED";
    }
  }

  dispose() {
    this.setLive(false);
    if (this.frame.url) URL.revokeObjectURL(this.frame.url);
    this.element.remove();
  }
}

export class CamerasView {
  constructor(app) {
    this.app = app;
    this.section = byId("view-cameras");
    this.grid = byId("camera-grid");
    this.cards = new Map();
    this.loading = null;
    this.ticker = null;
  }

  show() {
    this.section.hidden = false;
    if (this.cards.size === 0 && !this.loading) this.load();
    this.ticker ??= setInterval(() => this.tick(), 1000);
  }

  hide() {
    this.section.hidden = true;
    clearInterval(this.ticker);
    this.ticker = null;
    for (const card of this.cards.values()) card.setLive(false);
  }

  reset() {
    for (const card of this.cards.values()) card.dispose();
    this.cards.clear();
    this.loading = null;
  }

  /** The camera list, then each new camera's newest frame and stream state. */
  load() {
    this.loading = (async () => {
      try {
        const list = await this.app.call("get_camera_list");
        const seen = new Set();
        for (const camera of list.cameras) {
          seen.add(camera.device);
          let card = this.cards.get(camera.device);
          if (card) {
            card.update(camera);
            continue;
          }
          card = new CameraCard(this, camera);
          this.cards.set(camera.device, card);
          card.loadNewestFrame();
          card.loadStreamState();
        }
        for (const [device, card] of this.cards) {
          if (!seen.has(device)) {
            card.dispose();
            this.cards.delete(device);
          }
        }
        const ordered = [...this.cards.values()].sort((a, b) =>
          a.device.localeCompare(b.device, undefined, { numeric: true }),
        );
        this.grid.append(...ordered.map((card) => card.element));
        this.summarize();
      } catch (error) {
        this.app.report("Loading cameras", error);
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  summarize() {
    const cards = [...this.cards.values()];
    const connected = cards.filter((c) => c.camera.status === "CONNECTED").length;
    byId("cameras-summary").textContent = `${cards.length} cameras, ${connected} connected`;
    byId("cameras-empty").hidden = cards.length > 0;
  }

  tick() {
    for (const card of this.cards.values()) if (card.recording) card.renderRecording();
  }

  onNotification(method, params) {
    const card = this.cards.get(params.device);
    if (method === "camera_status_update") {
      if (card) {
        const wasConnected = card.camera.status === "CONNECTED";
        card.update(params);
        if (!wasConnected && params.status === "CONNECTED") card.loadStreamState();
        this.summarize();
      } else if (this.loading) {
        // The list being fetched may predate this camera: ask again once it is in.
        this.loading.then(() => this.cards.has(params.device) || this.load());
      } else {
        this.load();
      }
    } else if (method === "recording_status_update") {
      card?.recordingStatus(params);
    }
  }

  onEvent(topic, data) {
    const card = this.cards.get(data?.device);
    if (!card) return;
    if (topic === "snapshot.taken") card.showFrame(data.filename, data.download_url, Date.now(), true);
    else if (topic.startsWith("recording.")) card.recordingEvent(topic, data);
    else if (topic === "mediamtx.stream_started") card.setStreaming(true);
    else if (topic === "mediamtx.stream_stopped") card.setStreaming(false);
  }
}
