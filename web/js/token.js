// The access token of a server other machines can reach (docs/security.md). When the server
// answers 401, ask for it once, then reopen the page with ?token=: the server trades it for an
// HttpOnly cookie that every later request carries (fetch, the WebSocket, <img src=/view>),
// and redirects to the address without it. Scripts never see the token after that.

let asking = null;

/** Resolves false when the user dismisses the dialog; otherwise the page reloads. */
export function askForToken(base) {
  if (!asking) asking = showDialog(base);
  return asking;
}

function showDialog(base) {
  return new Promise((resolve) => {
    const dialog = document.createElement("dialog");
    dialog.id = "token-dialog";
    dialog.setAttribute("aria-labelledby", "token-dialog-title");
    const form = document.createElement("form");
    form.method = "dialog";
    const title = document.createElement("h2");
    title.id = "token-dialog-title";
    title.textContent = "Access token";
    const text = document.createElement("p");
    // a valid ?token= is redirected away by the server, so one still here was refused
    text.textContent = new URLSearchParams(location.search).has("token")
      ? "That token was not accepted. Enter the one the server printed when it started."
      : "This server needs its access token: the server printed it when it started (the address ending in ?token=…).";
    const input = document.createElement("input");
    input.type = "password";
    input.name = "token";
    input.autocomplete = "off";
    input.required = true;
    input.setAttribute("aria-label", "Access token");
    const submit = document.createElement("button");
    submit.type = "submit";
    submit.textContent = "Open";
    form.append(title, text, input, " ", submit);
    dialog.append(form);
    document.body.append(dialog);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (token) location.replace(`${base}/?token=${encodeURIComponent(token)}`);
    });
    dialog.addEventListener("cancel", () => {
      dialog.remove();
      resolve(false);
    });
    dialog.showModal();
  });
}
