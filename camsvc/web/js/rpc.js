// JSON-RPC 2.0 over one WebSocket (API.md §2.2, §3): requests matched by id, notifications
// dispatched as "notification" events, every pending call failed when the socket closes.

/** A JSON-RPC error reply; branch on `code` and `reason`, never on the message. */
export class RpcError extends Error {
  constructor(error) {
    super(error.data?.details || error.message);
    this.code = error.code;
    this.reason = error.data?.reason ?? "";
    this.data = error.data ?? {};
  }
}

/** Code of the RpcError a call gets when the connection closed before its reply. */
export const CLOSED = "closed";

export class Rpc extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.socket = null;
    this.nextId = 1;
    this.pending = new Map();
  }

  /** Open the socket; rejects when it cannot be opened. */
  open() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.socket = socket;
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("message", (event) => this.#receive(event.data));
      socket.addEventListener("close", (event) => {
        reject(new RpcError({ code: CLOSED, message: "connection closed" }));
        this.#failPending(event);
        this.dispatchEvent(new CustomEvent("close", { detail: { code: event.code } }));
      });
    });
  }

  close() {
    this.socket?.close(1000);
  }

  /** The result of `method`, or a rejected RpcError. */
  call(method, params, timeoutMs = 30000) {
    const id = this.nextId++;
    const message = { jsonrpc: "2.0", method, id };
    if (params !== undefined) message.params = params;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcError({ code: "timeout", message: `${method} timed out` }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.socket.send(JSON.stringify(message));
      } catch (error) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new RpcError({ code: CLOSED, message: String(error) }));
      }
    });
  }

  #receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return; // the server only sends JSON; anything else is not ours to act on
    }
    if (message.id === undefined && message.method) {
      this.dispatchEvent(new CustomEvent("notification", { detail: message }));
      return;
    }
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    this.pending.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.error) waiter.reject(new RpcError(message.error));
    else waiter.resolve(message.result);
  }

  #failPending(event) {
    for (const waiter of this.pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new RpcError({ code: CLOSED, message: `connection closed (${event.code})` }));
    }
    this.pending.clear();
  }
}
