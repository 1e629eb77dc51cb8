// The system view: health and components (/health/detailed, open to all), system status,
// storage and metrics with live charts (admin methods), and the alerts banner on every view.

import { Sparkline } from "./chart.js";
import { byId, formatBytes, formatDuration, h } from "./dom.js";

const POLL_MS = 2000;

const percent = (v) => `${v.toFixed(1)} %`;
const integer = (v) => String(Math.round(v));
// Alert figures are seconds, percentages or bytes: grouped digits read well for all three.
const figure = (v) => (v == null ? "–" : v.toLocaleString(undefined, { maximumFractionDigits: 2 }));

export class SystemView {
  constructor(app) {
    this.app = app;
    this.section = byId("view-system");
    this.timer = null;
    this.healthTimer = null;
    this.charts = null;
    this.lastRequests = null;
  }

  show() {
    this.section.hidden = false;
    byId("storage-panel").hidden = !this.app.can("get_storage_info");
    byId("metrics-panel").hidden = !this.app.can("get_metrics");
    this.buildCharts();
    if (!this.timer) {
      this.poll();
      this.timer = setInterval(() => this.poll(), POLL_MS);
    }
  }

  hide() {
    this.section.hidden = true;
    clearInterval(this.timer);
    this.timer = null;
  }

  reset() {
    this.hide();
    this.charts = null;
    this.lastRequests = null;
    byId("metrics").replaceChildren();
  }

  buildCharts() {
    if (this.charts) return;
    this.charts = {
      hostCpu: new Sparkline("Host CPU", percent, { max: 100 }),
      hostMemory: new Sparkline("Host memory", percent, { max: 100 }),
      disk: new Sparkline("Recordings disk", percent, { max: 100 }),
      processCpu: new Sparkline("camsvc CPU (one core)", percent),
      rss: new Sparkline("camsvc memory", formatBytes),
      requests: new Sparkline("Requests/s", (v) => v.toFixed(1)),
      connections: new Sparkline("Connections", integer),
      cameras: new Sparkline("Connected cameras", integer),
    };
    byId("metrics").replaceChildren(...Object.values(this.charts).map((c) => c.element));
  }

  async poll() {
    await Promise.all([
      this.loadHealth(),
      this.loadStatus(),
      this.app.can("get_storage_info") ? this.loadStorage() : null,
      this.app.can("get_metrics") ? this.loadMetrics() : null,
    ]);
  }

  /** Keep the alerts banner current on every view: now, and on each system.health event. */
  watchAlerts() {
    this.loadHealth();
  }

  async loadHealth() {
    let health;
    try {
      const response = await fetch("/health/detailed", { cache: "no-store" });
      health = await response.json(); // 503 (unhealthy) carries the same body
    } catch {
      return; // the connection banner covers an unreachable service
    }
    const firing = health.components.find((c) => c.name === "alerts")?.details?.firing ?? [];
    this.showAlerts(firing);
    const overall = byId("health-overall");
    overall.replaceChildren(
      h("span", { class: `badge health-${health.status}`, dataset: { field: "health" } }, health.status),
      ` version ${health.version}, up ${formatDuration(health.uptime_seconds)}`,
    );
    byId("components").replaceChildren(
      ...health.components.map((c) =>
        h(
          "li",
          { dataset: { component: c.name } },
          h("span", { class: `badge health-${c.status}` }, c.status),
          h("strong", {}, c.name),
          h("span", { class: "muted" }, c.message),
        ),
      ),
    );
  }

  showAlerts(firing) {
    const banner = byId("alerts");
    banner.hidden = firing.length === 0 || !this.app.auth;
    banner.textContent = firing.length
      ? `Alert firing: ${firing.map((a) => `${a.alert} (${a.severity})`).join(", ")}`
      : "";
    byId("firing").replaceChildren(
      ...(firing.length
        ? firing.map((a) =>
            h(
              "li",
              { class: `sev-${a.severity}` },
              h("strong", {}, a.alert),
              ` ${a.severity}: ${figure(a.value)} (threshold ${figure(a.threshold)})`,
            ),
          )
        : [h("li", { class: "muted" }, "No alert firing")]),
    );
  }

  async loadStatus() {
    try {
      const status = await this.app.call("get_system_status");
      byId("system-summary").textContent =
        `${status.message}; ${status.available_cameras.length} cameras available`;
    } catch (error) {
      this.app.report("System status", error);
    }
  }

  async loadStorage() {
    let info;
    try {
      info = await this.app.call("get_storage_info");
    } catch (error) {
      this.app.report("Storage", error);
      return;
    }
    const bar = h("meter", {
      min: 0,
      max: 100,
      low: info.warn_percent,
      high: info.block_percent,
      optimum: 0,
      value: info.usage_percentage,
      "aria-label": "Disk usage",
    });
    const state = info.blocked ? "blocked" : info.low_space_warning ? "low space" : "ok";
    byId("storage").replaceChildren(
      h("p", {}, bar, ` ${info.usage_percentage.toFixed(1)} % used (${state})`),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Available"),
        h("dd", {}, formatBytes(info.available_space)),
        h("dt", {}, "Recordings"),
        h("dd", {}, formatBytes(info.recordings_size)),
        h("dt", {}, "Snapshots"),
        h("dd", {}, formatBytes(info.snapshots_size)),
      ),
    );
  }

  async loadMetrics() {
    let m;
    try {
      m = await this.app.call("get_metrics");
    } catch (error) {
      this.app.report("Metrics", error);
      return;
    }
    const c = this.charts;
    c.hostCpu.push(m.system_metrics.cpu_usage);
    c.hostMemory.push(m.system_metrics.memory_usage);
    c.disk.push(m.system_metrics.disk_usage);
    c.processCpu.push(m.resources.cpu_usage);
    c.rss.push(m.resources.memory_usage_bytes);
    c.connections.push(m.performance.active_connections);
    c.cameras.push(m.camera_metrics.connected_cameras);
    const now = Date.parse(m.timestamp);
    const count = m.performance.request_count;
    if (this.lastRequests && now > this.lastRequests.at) {
      c.requests.push(((count - this.lastRequests.count) * 1000) / (now - this.lastRequests.at));
    }
    this.lastRequests = { at: now, count };
  }

  onEvent(topic) {
    if (topic !== "system.health") return;
    clearTimeout(this.healthTimer);
    this.healthTimer = setTimeout(() => this.loadHealth(), 100);
  }
}
