// The files view: snapshots and recordings a page at a time (list_snapshots / list_recordings),
// with thumbnails, download, and delete where the role allows it.

import { byId, confirmButton, formatBytes, formatDuration, formatTime, h, toast } from "./dom.js";
import { ImageCache, saveFile } from "./media.js";

const PAGE_SIZE = 12;

const KINDS = {
  snapshots: { list: "list_snapshots", remove: "delete_snapshot", noun: "snapshot" },
  recordings: { list: "list_recordings", remove: "delete_recording", noun: "recording" },
};

export class FilesView {
  constructor(app) {
    this.app = app;
    this.section = byId("view-files");
    this.list = byId("file-list");
    this.deviceSelect = byId("files-device");
    this.kind = "snapshots";
    this.offset = 0;
    this.total = 0;
    this.visible = false;
    this.request = 0;
    this.refreshTimer = null;
    this.thumbs = new ImageCache();
    for (const button of this.section.querySelectorAll(".tabs button")) {
      button.addEventListener("click", () => this.setKind(button.dataset.kind));
    }
    this.deviceSelect.addEventListener("change", () => {
      this.offset = 0;
      this.load();
    });
    byId("files-refresh").addEventListener("click", () => this.load());
    byId("files-prev").addEventListener("click", () => this.page(-1));
    byId("files-next").addEventListener("click", () => this.page(1));
  }

  show() {
    this.section.hidden = false;
    this.visible = true;
    this.loadDevices();
    this.load();
  }

  hide() {
    this.section.hidden = true;
    this.visible = false;
  }

  reset() {
    this.list.replaceChildren();
    this.thumbs.keepOnly(new Set());
    this.offset = 0;
  }

  setKind(kind) {
    this.kind = kind;
    this.offset = 0;
    for (const button of this.section.querySelectorAll(".tabs button")) {
      button.setAttribute("aria-pressed", String(button.dataset.kind === kind));
    }
    this.load();
  }

  page(direction) {
    const next = this.offset + direction * PAGE_SIZE;
    if (next < 0 || next >= Math.max(this.total, 1)) return;
    this.offset = next;
    this.load();
  }

  async loadDevices() {
    try {
      const { cameras } = await this.app.call("get_camera_list");
      const chosen = this.deviceSelect.value;
      this.deviceSelect.replaceChildren(
        h("option", { value: "" }, "All"),
        ...cameras.map((c) => h("option", { value: c.device }, c.device)),
      );
      this.deviceSelect.value = cameras.some((c) => c.device === chosen) ? chosen : "";
    } catch (error) {
      this.app.report("Listing cameras", error);
    }
  }

  /** Reload the current page (soon, coalescing bursts of events). */
  refreshSoon() {
    if (!this.visible) return;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.load(), 300);
  }

  async load() {
    const kind = KINDS[this.kind];
    const request = ++this.request;
    const params = { limit: PAGE_SIZE, offset: this.offset };
    if (this.deviceSelect.value) params.device = this.deviceSelect.value;
    let page;
    try {
      page = await this.app.call(kind.list, params);
    } catch (error) {
      this.app.report("Listing files", error);
      return;
    }
    if (request !== this.request) return; // a newer load is on its way
    if (page.files.length === 0 && page.total > 0 && this.offset > 0) {
      // The page emptied (files deleted): show the last one that has files.
      this.offset = Math.max(0, Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE);
      this.load();
      return;
    }
    this.total = page.total;
    const rows = page.files.map((file) => this.row(file));
    this.list.replaceChildren(...rows);
    this.list.dataset.kind = this.kind;
    this.thumbs.keepOnly(new Set(page.files.map((f) => f.filename)));
    const pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
    const current = Math.floor(this.offset / PAGE_SIZE) + 1;
    byId("files-page").textContent = `Page ${current} of ${pages} · ${page.total} ${kind.noun}s`;
    byId("files-prev").disabled = this.offset === 0;
    byId("files-next").disabled = this.offset + PAGE_SIZE >= page.total;
    byId("files-empty").hidden = page.total > 0;
  }

  row(file) {
    const kind = KINDS[this.kind];
    const facts = [
      h("span", {}, file.device ?? "–"),
      h("span", { dataset: { field: "size" } }, formatBytes(file.file_size)),
    ];
    if (this.kind === "recordings") {
      facts.push(h("span", { dataset: { field: "duration" } }, formatDuration(file.duration)));
    }
    facts.push(h("span", {}, formatTime(file.modified_time)));

    const download = h(
      "button",
      { type: "button", dataset: { action: "download" }, "aria-label": `Download ${file.filename}` },
      "Download",
    );
    download.addEventListener("click", async () => {
      download.disabled = true;
      try {
        await saveFile(this.app.token, file.download_url, file.filename);
      } catch (error) {
        this.app.report("Download", error);
      } finally {
        download.disabled = false;
      }
    });
    const actions = [download];
    if (this.app.can(kind.remove)) {
      actions.push(
        confirmButton(
          "Delete",
          "Confirm delete",
          async () => {
            try {
              await this.app.call(kind.remove, { filename: file.filename });
              toast(`Deleted ${file.filename}`);
              this.load();
            } catch (error) {
              this.app.report("Delete", error);
            }
          },
          { dataset: { action: "delete" }, "aria-label": `Delete ${file.filename}` },
        ),
      );
    }

    let thumb = null;
    if (this.kind === "snapshots") {
      const img = h("img", { alt: `Snapshot ${file.filename}`, loading: "lazy" });
      thumb = h("div", { class: "thumb" }, img);
      this.thumbs.get(this.app.token, file.filename, file.download_url).then(
        (url) => {
          img.src = url;
        },
        () => thumb.classList.add("missing"),
      );
    }
    return h(
      "article",
      { class: "file", dataset: { filename: file.filename } },
      thumb,
      h("div", { class: "file-body" }, h("h2", { class: "name" }, file.filename), h("p", { class: "facts" }, ...facts)),
      h("div", { class: "actions" }, ...actions),
    );
  }

  onNotification(method, params) {
    if (method === "recording_status_update" && params.status !== "STARTED") {
      if (this.kind === "recordings") this.refreshSoon();
    }
  }

  onEvent(topic) {
    if (topic === "snapshot.taken" && this.kind === "snapshots") this.refreshSoon();
    if (topic === "recording.start" && this.kind === "recordings") this.refreshSoon();
  }
}
