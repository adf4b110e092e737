// Live import progress: listens on the /ws/events websocket (the session cookie authenticates it) and
// re-renders a job's row or card from the server when an event names it. Falls back to polling
// unfinished jobs every few seconds when the socket is unavailable. Without JS the page is static.
(function () {
  "use strict";
  const ZERO = "00000000-0000-0000-0000-000000000000";
  const UNFINISHED = new Set(["queued", "running"]);

  function replaceFrom(url, current, insert) {
    return fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then((response) => (response.ok ? response.text() : null))
      .then((html) => {
        if (html === null) return;
        if (current) current.outerHTML = html;
        else if (insert) insert(html);
      });
  }

  function refresh(jobId) {
    const table = document.querySelector("[data-live-jobs]");
    if (table) {
      const row = document.getElementById("job-" + jobId);
      const url = table.dataset.rowUrl.replace(ZERO, jobId);
      replaceFrom(url, row, (html) => table.tBodies[0].insertAdjacentHTML("afterbegin", html));
    }
    const holder = document.querySelector("[data-live-job]");
    const card = document.getElementById("job-card");
    if (holder && card && card.dataset.job === jobId) replaceFrom(holder.dataset.cardUrl, card, null);
  }

  function unfinished() {
    return Array.from(document.querySelectorAll("[data-job]"))
      .filter((el) => UNFINISHED.has(el.dataset.status))
      .map((el) => el.dataset.job);
  }

  let pollTimer = null;
  function poll() {
    if (pollTimer) return;
    pollTimer = window.setInterval(() => unfinished().forEach(refresh), 3000);
  }

  function connect() {
    const status = document.getElementById("live-status");
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    let socket;
    try {
      socket = new WebSocket(scheme + window.location.host + "/ws/events");
    } catch (error) {
      poll();
      return;
    }
    socket.addEventListener("open", () => { if (status) status.classList.add("on"); });
    socket.addEventListener("message", (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (error) { return; }
      if ((event.type === "ingest.progress" || event.type === "ingest.finished") && event.data && event.data.id) {
        refresh(event.data.id);
      }
    });
    socket.addEventListener("close", () => {
      if (status) status.classList.remove("on");
      poll();
    });
    // Keep proxies from closing an idle socket.
    window.setInterval(() => { if (socket.readyState === WebSocket.OPEN) socket.send('{"type":"ping"}'); }, 30000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.querySelector("[data-live-jobs], [data-live-job]")) connect();
  });
})();
