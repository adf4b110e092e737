// Progressive enhancement only: every page works without this file.
document.documentElement.classList.add("js");

document.addEventListener("change", (event) => {
  const el = event.target;
  if ((el instanceof HTMLSelectElement || el instanceof HTMLInputElement) && el.hasAttribute("data-autosubmit")) {
    // A date box fires "change" only for a complete date, so a half-typed one does not submit.
    if (el.type !== "date" || !el.value || /^\d{4}-\d{2}-\d{2}$/.test(el.value)) el.form.requestSubmit();
  }
});

document.addEventListener("submit", (event) => {
  const message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) event.preventDefault();
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.getAttribute("data-copy"));
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch {
    window.getSelection().selectAllChildren(source);
  }
});

// "/" focuses the page's search box, as in most web apps.
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const active = document.activeElement;
  if (active && (active.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) return;
  const box = document.querySelector("input[type=search]");
  if (box) {
    event.preventDefault();
    box.focus();
    box.select();
  }
});

// --- issue 19 -------------------------------------------------------------------------------

// Theme toggle: auto → light → dark → auto, remembered in this browser.
(function () {
  const order = ["auto", "light", "dark"];
  const current = () => document.documentElement.dataset.theme || "auto";
  const label = () => document.querySelectorAll("[data-theme-toggle]").forEach((b) => { b.textContent = "Theme: " + current(); });
  document.addEventListener("click", (event) => {
    if (!event.target.closest("[data-theme-toggle]")) return;
    const next = order[(order.indexOf(current()) + 1) % order.length];
    if (next === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = next;
    try { window.localStorage.setItem("easymemory-theme", next); } catch (e) { /* private mode */ }
    label();
  });
  document.addEventListener("DOMContentLoaded", label);
})();

// Narrow screens: the menu folds behind its button.
document.addEventListener("click", (event) => {
  const button = event.target.closest(".menu-toggle");
  if (!button) return;
  const sidebar = document.getElementById(button.getAttribute("aria-controls"));
  const open = sidebar.classList.toggle("open");
  button.setAttribute("aria-expanded", String(open));
});

// Bulk actions: "select all" boxes, the count of checked rows, and only the inputs the action needs.
function bulkRefresh(form) {
  const checked = form.querySelectorAll("input[name=ids]:checked").length;
  const all = form.querySelector("input[name=all]");
  const count = form.querySelector("[data-bulk-count]");
  if (count) count.textContent = all && all.checked ? "All matching:" : checked ? checked + " selected:" : "Select rows, or";
  const action = form.querySelector("select[name=action]");
  form.querySelectorAll(".bulk-param").forEach((input) => {
    input.classList.toggle("shown", (input.dataset.for || "").split(" ").includes(action.value));
  });
}
document.addEventListener("change", (event) => {
  const form = event.target.closest("form[data-bulk]");
  if (!form) return;
  if (event.target.matches("[data-check-all]")) {
    form.querySelectorAll("input[name=ids]").forEach((box) => { box.checked = event.target.checked; });
  }
  bulkRefresh(form);
});
document.addEventListener("DOMContentLoaded", () => document.querySelectorAll("form[data-bulk]").forEach(bulkRefresh));
document.addEventListener("htmx:afterSwap", () => document.querySelectorAll("form[data-bulk]").forEach(bulkRefresh));

// Lists by keyboard: j / k (or the arrow keys with Alt) move between rows, Enter opens the row's link.
document.addEventListener("keydown", (event) => {
  const active = document.activeElement;
  if (event.ctrlKey || event.metaKey) return;
  if (active && (active.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) return;
  const down = event.key === "j" || (event.altKey && event.key === "ArrowDown");
  const up = event.key === "k" || (event.altKey && event.key === "ArrowUp");
  if (!down && !up) return;
  const links = [...document.querySelectorAll("table.memories tbody tr td a:first-of-type, .hits .hit a.hit-content")];
  if (!links.length) return;
  event.preventDefault();
  const index = links.indexOf(active);
  const next = links[Math.max(0, Math.min(links.length - 1, index < 0 ? 0 : index + (down ? 1 : -1)))];
  next.focus();
  next.scrollIntoView({ block: "nearest" });
});
