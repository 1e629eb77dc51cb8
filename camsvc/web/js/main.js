// The dashboard's entry point: sign-in, the connection (with reconnects), roles, and the
// switch between the three views. Views get the App and call the API through it.

import { CamerasView } from "./cameras.js";
import { byId, toast } from "./dom.js";
import { FilesView } from "./files.js";
import { CLOSED, Rpc, RpcError } from "./rpc.js";
import { SystemView } from "./system.js";

const CREDENTIAL_KEY = "camsvc.credential";
const ROLE_RANK = { none: 0, viewer: 1, operator: 2, admin: 3 };
// Topic events the views use (API.md §9.3); camera_status_update and
// recording_status_update come without subscribing.
const TOPICS = [
  "recording.start",
  "recording.progress",
  "snapshot.taken",
  "system.health",
  "mediamtx.stream_started",
  "mediamtx.stream_stopped",
];
const RECONNECT_MAX_MS = 5000;

function webSocketUrl() {
  const path = document.querySelector('meta[name="camsvc-ws-path"]').content || "/ws";
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

class App {
  constructor() {
    this.token = null;
    this.rpc = null;
    this.auth = null;
    this.requiredRoles = new Map();
    this.reconnectDelay = 250;
    this.reconnectTimer = null;
    this.views = {
      cameras: new CamerasView(this),
      files: new FilesView(this),
      system: new SystemView(this),
    };
    this.current = null;
  }

  start() {
    byId("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn(byId("token").value.trim());
    });
    byId("signout").addEventListener("click", () => this.signOut(""));
    window.addEventListener("hashchange", () => this.showView());
    const saved = sessionStorage.getItem(CREDENTIAL_KEY);
    if (saved) this.signIn(saved);
    else this.showSignIn("");
  }

  /** Whether the signed-in role may call `method` (rpc.discover's x-required-role). */
  can(method) {
    const required = this.requiredRoles.get(method);
    if (required === undefined || !this.auth) return false;
    return ROLE_RANK[this.auth.role] >= ROLE_RANK[required];
  }

  /** Call a method; an expired or revoked credential signs out. */
  async call(method, params) {
    if (!this.rpc) throw new RpcError({ code: CLOSED, message: "not connected" });
    try {
      return await this.rpc.call(method, params);
    } catch (error) {
      if (error instanceof RpcError && error.code === -32001 && this.token) {
        this.signOut(
          error.reason === "token_expired"
            ? "Session expired"
            : "The credential is no longer accepted.",
        );
      }
      throw error;
    }
  }

  /** A failed action, told to the user. */
  report(action, error) {
    // A closed connection has its banner, and a refused credential the sign-in form.
    if (error instanceof RpcError && (error.code === CLOSED || error.code === -32001)) return;
    toast(`${action} failed: ${error.message}`, "error");
  }

  async signIn(token) {
    if (!token) return;
    const error = byId("signin-error");
    const submit = byId("signin-form").querySelector("button");
    error.textContent = "";
    this.token = token;
    submit.disabled = true; // one sign-in at a time
    try {
      await this.connect();
    } catch (failure) {
      this.token = null;
      sessionStorage.removeItem(CREDENTIAL_KEY);
      this.showSignIn(
        failure instanceof RpcError && failure.code === -32001
          ? "Sign-in failed: the token or key was not accepted."
          : `Sign-in failed: ${failure.message}`,
      );
      return;
    } finally {
      submit.disabled = false;
    }
    sessionStorage.setItem(CREDENTIAL_KEY, token);
    byId("token").value = "";
    this.showShell();
  }

  signOut(message) {
    this.token = null;
    this.auth = null;
    sessionStorage.removeItem(CREDENTIAL_KEY);
    clearTimeout(this.reconnectTimer);
    const rpc = this.rpc;
    this.rpc = null;
    rpc?.close();
    for (const view of Object.values(this.views)) view.reset();
    this.showSignIn(message);
  }

  /** Open a connection, authenticate, learn the roles, subscribe. Throws when any fails. */
  async connect() {
    const rpc = new Rpc(webSocketUrl());
    await rpc.open();
    try {
      this.auth = await rpc.call("authenticate", { auth_token: this.token });
      if (this.requiredRoles.size === 0) {
        const discovered = await rpc.call("rpc.discover");
        for (const method of discovered.methods) {
          this.requiredRoles.set(method.name, method["x-required-role"]);
        }
      }
      await rpc.call("subscribe_events", { topics: TOPICS });
    } catch (error) {
      rpc.close();
      throw error;
    }
    rpc.addEventListener("notification", (event) => this.dispatch(event.detail));
    rpc.addEventListener("close", () => this.connectionLost(rpc));
    this.rpc = rpc;
    this.reconnectDelay = 250;
    byId("connection").hidden = true;
  }

  connectionLost(rpc) {
    if (this.rpc !== rpc || !this.token) return; // replaced, or signed out on purpose
    this.rpc = null;
    const banner = byId("connection");
    banner.textContent = "Connection lost; reconnecting…";
    banner.hidden = false;
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    this.reconnectTimer = setTimeout(async () => {
      if (!this.token) return;
      try {
        await this.connect();
      } catch (error) {
        if (error instanceof RpcError && error.code === -32001) {
          this.signOut("The credential is no longer accepted.");
          return;
        }
        this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
        this.scheduleReconnect();
        return;
      }
      for (const view of Object.values(this.views)) view.reset();
      this.showShell(); // who is signed in and the alerts, as they are now
    }, this.reconnectDelay);
  }

  dispatch(message) {
    const { method, params } = message;
    if (method === "event") {
      for (const view of Object.values(this.views)) view.onEvent?.(params.topic, params.data);
    } else {
      for (const view of Object.values(this.views)) view.onNotification?.(method, params);
    }
  }

  showSignIn(message) {
    byId("nav").hidden = true;
    byId("who").hidden = true;
    byId("signout").hidden = true;
    byId("alerts").hidden = true;
    byId("connection").hidden = true;
    for (const view of Object.values(this.views)) view.hide();
    byId("signin-error").textContent = message;
    byId("signin").hidden = false;
    byId("token").focus();
  }

  showShell() {
    byId("signin").hidden = true;
    byId("nav").hidden = false;
    const who = byId("who");
    who.textContent = `${this.auth.user_id} · ${this.auth.role}`;
    who.dataset.role = this.auth.role;
    who.hidden = false;
    byId("signout").hidden = false;
    this.views.system.watchAlerts();
    this.showView();
  }

  showView() {
    if (!this.auth) return;
    const name = location.hash.slice(1) in this.views ? location.hash.slice(1) : "cameras";
    for (const link of byId("nav").querySelectorAll("a")) {
      if (link.dataset.view === name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    for (const [key, view] of Object.entries(this.views)) {
      if (key !== name) view.hide();
    }
    this.current = this.views[name];
    this.current.show();
  }
}

const app = new App();
window.camsvcDashboard = app; // for the browser console
app.start();
