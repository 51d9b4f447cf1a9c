// Calls to the service's own API. The key (when the server asks for one) lives in
// sessionStorage only: it is forgotten when the browser tab closes.

const KEY_STORAGE = "wavemae.apiKey";

/** An API answer other than 2xx, with the service's error message. */
export class ApiError extends Error {
  constructor(status, message, type) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

let pendingKey = null; // one key prompt at a time, shared by every request that got a 401

/** Ask for a key in the page's key dialog; resolves with the key, or null when cancelled. */
function promptForKey(reason) {
  if (pendingKey) return pendingKey;
  const dialog = document.getElementById("key-dialog");
  const input = dialog.querySelector("input");
  dialog.querySelector(".reason").textContent = reason;
  input.value = "";
  pendingKey = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        pendingKey = null;
        const key = dialog.returnValue === "ok" ? input.value.trim() : "";
        if (key) sessionStorage.setItem(KEY_STORAGE, key);
        resolve(key || null);
      },
      { once: true },
    );
  });
  dialog.showModal();
  input.focus();
  return pendingKey;
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

export function hasKey() {
  return Boolean(sessionStorage.getItem(KEY_STORAGE));
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  let type = "error";
  try {
    const body = await response.json();
    if (body && body.error) {
      message = body.error.message || message;
      type = body.error.type || type;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message, type);
}

/**
 * fetch() against this server with the stored key. On 401 asks for a key once and retries.
 * Returns the parsed JSON (or text for non-JSON answers); throws ApiError for other non-2xx.
 */
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const key = sessionStorage.getItem(KEY_STORAGE);
    const sent = { ...headers };
    if (key) sent.Authorization = `Bearer ${key}`;
    const raw = body instanceof FormData || body instanceof Blob || typeof body === "string";
    if (body !== undefined && !raw) {
      sent["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    const response = await fetch(path, { method, body, headers: sent });
    if (response.status === 401) {
      const error = await errorOf(response);
      if (key) forgetKey();
      const entered = await promptForKey(error.message);
      if (!entered) throw error;
      continue;
    }
    if (!response.ok) throw await errorOf(response);
    const kind = response.headers.get("content-type") || "";
    return kind.includes("json") ? response.json() : response.text();
  }
  throw new ApiError(401, "no valid API key was given", "unauthorized");
}
